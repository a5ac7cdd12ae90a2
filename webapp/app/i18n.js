// The app's words in Spanish and English. Spanish first: most of the
// people it serves read it.
export const messages = {
  es: {
    language: 'Idioma',
    intro: 'Pegue el código de invitación que le dio una organización y elija una frase de paso. La clave se crea en este teléfono y no sale de él.',
    code: 'Código de invitación',
    passphrase: 'Frase de paso',
    passHint: 'Al menos 8 caracteres; varias palabras son más fáciles de recordar.',
    node: 'Dirección del nodo para navegadores (si se la dieron)',
    nodeHint: 'Una dirección /webtransport/certhash/… de la organización que le invitó.',
    join: 'Unirse',
    makingKey: 'Creando su clave…',
    redeeming: 'Contactando al nodo que le invitó…',
    admitting: 'Comprobando las claves…',
    syncing: 'Descargando el directorio…',
    search: 'Buscar servicios',
    searchPlaceholder: 'asesoría, vivienda, salud…',
    nothingFound: 'No se encontró nada.',
    joined: (net, epoch) => `Red ${net}… (época ${epoch}). Puede buscar sin conexión mientras esta página esté abierta.`,
    description: 'Descripción',
    areas: 'Zonas',
    languages: 'Idiomas',
    badPassphrase: 'La frase de paso es demasiado corta: use al menos 8 caracteres.',
    badCode: 'El código de invitación no es válido: revise que lo copió entero, sin cambiar nada.',
    badNode: 'La dirección del nodo no es válida: debe ser una dirección WebTransport con su certhash.',
    otherNode: 'La dirección del nodo es de otro nodo, no del que hizo este código.',
    expired: 'El código ha caducado. Pida uno nuevo a la organización.',
    spent: 'Este código ya se usó: cada código sirve una sola vez. Pida uno nuevo a la organización.',
    refused: 'El nodo rechazó el código: puede que ya se haya usado, que haya caducado o que sea de otra red. Pida uno nuevo.',
    garbage: 'El nodo respondió algo que no es una respuesta válida de Ceiba. No se guardó nada. Avise a la organización.',
    unreachable: 'No se pudo contactar al nodo. Compruebe la conexión y la dirección del nodo, y vuelva a intentarlo.',
    syncFailed: 'Se unió a la red, pero la descarga del directorio no terminó. Puede buscar en lo que llegó.',
    searchFailed: 'La búsqueda falló.',
    unexpected: 'Algo falló.',
  },
  en: {
    language: 'Language',
    intro: 'Paste the invite code an organization gave you and choose a passphrase. The key is made on this phone and never leaves it.',
    code: 'Invite code',
    passphrase: 'Passphrase',
    passHint: 'At least 8 characters; a few words are easier to remember.',
    node: 'Node address for browsers (if you were given one)',
    nodeHint: 'A /webtransport/certhash/… address of the organization that invited you.',
    join: 'Join',
    makingKey: 'Making your key…',
    redeeming: 'Contacting the node that invited you…',
    admitting: 'Checking keys…',
    syncing: 'Downloading the directory…',
    search: 'Search services',
    searchPlaceholder: 'legal advice, housing, health…',
    nothingFound: 'Nothing found.',
    joined: (net, epoch) => `Network ${net}… (epoch ${epoch}). You can search offline while this page stays open.`,
    description: 'Description',
    areas: 'Areas',
    languages: 'Languages',
    badPassphrase: 'The passphrase is too short: use at least 8 characters.',
    badCode: 'The invite code is not valid: check that you copied all of it, unchanged.',
    badNode: 'The node address is not valid: it must be a WebTransport address with its certhash.',
    otherNode: 'The node address belongs to another node, not the one that made this code.',
    expired: 'The code has expired. Ask the organization for a new one.',
    spent: 'This code was used already: each code works once. Ask the organization for a new one.',
    refused: 'The node refused the code: it may have been used already, have expired, or belong to another network. Ask for a new one.',
    garbage: 'The node answered something that is not a valid Ceiba answer. Nothing was stored. Tell the organization.',
    unreachable: 'Could not reach the node. Check your connection and the node address, and try again.',
    syncFailed: 'You joined the network, but the directory download did not finish. You can search what arrived.',
    searchFailed: 'The search failed.',
    unexpected: 'Something went wrong.',
  },
};

// pickLanguage: the one asked for (?lang=), else the browser's first
// Spanish or English preference, else Spanish.
export function pickLanguage(asked, preferred) {
  if (asked in messages) return asked;
  for (const p of preferred) {
    const base = String(p).toLowerCase().split('-')[0];
    if (base in messages) return base;
  }
  return 'es';
}
