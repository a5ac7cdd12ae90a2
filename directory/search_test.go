package directory_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

var searchNow = dirtest.Epoch

// svc is a service as a test writes it; zero fields keep SampleEntry's,
// except the description, which would otherwise match "legal" everywhere.
type svc struct {
	name, desc, elig, status string
	cats, langs              []string
	areas                    []directory.Area
	expires                  time.Time
}

func (s svc) entry(id string, seq uint64) *directory.Entry {
	e := dirtest.SampleEntry(id, seq, searchNow)
	se := e.Service
	if s.name != "" {
		se.Name = s.name
	}
	se.Description = s.desc
	se.Eligibility = s.elig
	if s.status != "" {
		se.Status = s.status
	}
	if s.cats != nil {
		se.Categories = s.cats
	}
	if s.langs != nil {
		se.Languages = s.langs
	}
	if s.areas != nil {
		se.Areas = s.areas
	}
	if !s.expires.IsZero() {
		e.Expires = s.expires.Unix()
	}
	return e
}

// newIndex indexes each service under key "k/<id>".
func newIndex(t testing.TB, svcs map[string]svc) *directory.Index {
	t.Helper()
	ix := directory.NewIndex()
	for _, id := range slices.Sorted(maps.Keys(svcs)) {
		e := svcs[id].entry(id, 1)
		if err := directory.CheckService(e.Service); err != nil {
			t.Fatalf("fixture %s: %v", id, err)
		}
		ix.Put("k/"+id, directory.PublicKey{}, e)
	}
	return ix
}

func ids(rs []directory.Result) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Entry.ID)
	}
	return out
}

func search(ix *directory.Index, q directory.Query) []string {
	return ids(ix.Search(q, searchNow))
}

func wantIDs(t *testing.T, ix *directory.Index, q directory.Query, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := search(ix, q); !slices.Equal(got, want) {
		t.Errorf("search %+v = %v, want %v", q, got, want)
	}
}

func wantSet(t *testing.T, ix *directory.Index, q directory.Query, want ...string) {
	t.Helper()
	got := search(ix, q)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("search %+v = %v, want (any order) %v", q, got, want)
	}
}

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"Asesoría Jurídica": "asesoria juridica",
		"COMPAÑEROS":        "companeros",
		"pingüino":          "pinguino",
		"already folded":    "already folded",
		"Ça Va":             "ca va",
	} {
		if got := directory.Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}

// Fold takes shortcuts for Latin text; it must agree with the rule it
// stands for (NFD, drop nonspacing marks, lowercase) on every input.
func TestFoldMatchesNFD(t *testing.T) {
	ref := func(s string) string {
		var b strings.Builder
		for _, r := range norm.NFD.String(s) {
			if !unicode.Is(unicode.Mn, r) {
				b.WriteRune(unicode.ToLower(r))
			}
		}
		return b.String()
	}
	inputs := []string{"", "Ñandú", "e\u0301le\u0300ve", "Ǆemal Ǳ", "İstanbul", "Ærø", "Straße", "Ελληνικά Ἀθῆναι",
		"Москва́", "日本語", "한국어", "ﬁn", "bad\xffutf8é", "Ş̧ a\u0308\u0301"}
	for r := rune(0x80); r < 0x300; r++ {
		inputs = append(inputs, "x"+string(r)+"Y", string(r)+"\u0301")
	}
	for _, s := range inputs {
		if got, want := directory.Fold(s), ref(s); got != want {
			t.Errorf("Fold(%+q) = %+q, want %+q", s, got, want)
		}
	}
}

func TestSearchFoldsAccentsBothWays(t *testing.T) {
	ix := newIndex(t, map[string]svc{
		"acc":   {name: "Asesoría migratoria", cats: []string{"migration"}},
		"plain": {name: "Asesoria legal", desc: "Sin acentos en el texto.", cats: []string{"legal"}},
		"psi":   {name: "Atención psicológica", desc: "Para compañeros en el exilio.", cats: []string{"health"}},
		"nye":   {name: "Red de companeros", desc: "Escrito sin eñe.", cats: []string{"accompaniment"}},
	})
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"asesoria migratoria", []string{"acc"}},
		{"ASESORÍA LEGAL", []string{"plain"}},
		{"psicologica", []string{"psi"}},
		{"PSICOLÓGICA", []string{"psi"}},
		{"companeros", []string{"nye", "psi"}},
		{"compañeros", []string{"nye", "psi"}},
	} {
		wantSet(t, ix, directory.Query{Text: tc.q}, tc.want...)
	}
}

func TestSearchStemsPluralsAndGender(t *testing.T) {
	ix := newIndex(t, map[string]svc{
		"abog": {name: "Abogadas feministas", desc: "Litigio estratégico.", cats: []string{"work"}},
		"ref":  {name: "Refugios temporales", desc: "Camas para familias.", cats: []string{"food"}},
		"shel": {name: "Night shelters", desc: "Beds for families.", cats: []string{"food"}},
	})
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"abogado", []string{"abog"}},
		{"abogados", []string{"abog"}},
		{"abogada", []string{"abog"}},
		{"refugio temporal", []string{"ref"}},
		{"shelter", []string{"shel"}},
		{"family", []string{"ref", "shel"}}, // famili: familia(s), families
		{"abog", []string{"abog"}},          // prefix, as typed
	} {
		wantSet(t, ix, directory.Query{Text: tc.q}, tc.want...)
	}
}

func TestSearchToleratesTypos(t *testing.T) {
	ix := newIndex(t, map[string]svc{
		"alb":  {name: "Albergue San José", desc: "Camas para familias.", cats: []string{"shelter"}},
		"ases": {name: "Asesoría migratoria", cats: []string{"migration"}},
		"psi":  {name: "Psicólogos voluntarios", cats: []string{"psychosocial"}},
		"rep":  {name: "Representación internacional", desc: "Litigio ante la Comisión.", cats: []string{"legal"}},
		"cp":   {name: "Oficina 28001", desc: "Casa abierta.", cats: []string{"legal"}},
		"caso": {name: "Cosa nostra", cats: []string{"legal"}},
	})
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"alberge", []string{"alb"}},                      // a letter missing
		{"albergeu", []string{"alb"}},                     // two neighbours swapped
		{"asesorai", []string{"ases"}},                    // swapped, accent dropped
		{"psicolgos", []string{"psi"}},                    // a letter missing, plural
		{"representacoin", []string{"rep"}},               // 14 letters: swap
		{"reprezentasion internasional", []string{"rep"}}, // 15 and 13 letters: two edits each
		{"casa", []string{"cp"}},                          // 4 letters: exact only, no "cosa"
		{"28002", []string{}},                             // numbers are never guessed at
		{"alxxxgue", []string{}},                          // three edits: too far
	} {
		wantSet(t, ix, directory.Query{Text: tc.q}, tc.want...)
	}

	// What was typed ranks above a guess.
	ix = newIndex(t, map[string]svc{
		"exact": {name: "Refugio Maria", cats: []string{"shelter"}},
		"near":  {name: "Refugio Marta", cats: []string{"shelter"}},
	})
	// marta is one edit from maria: both are found, marta first.
	wantIDs(t, ix, directory.Query{Text: "marta"}, "near", "exact")
	wantIDs(t, ix, directory.Query{Text: "refugio mariia"}, "exact")
}

func TestSearchCategorySynonyms(t *testing.T) {
	// Neutral names, so only the category can match.
	svcs := map[string]svc{}
	for i, c := range directory.Categories {
		svcs[c] = svc{name: fmt.Sprintf("Servicio número %d", i+1), desc: "Sin más detalles.", cats: []string{c}}
	}
	ix := newIndex(t, svcs)
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"legal", []string{"legal"}},
		{"jurídica", []string{"legal"}},
		{"abogado", []string{"legal"}},
		{"lawyers", []string{"legal"}},
		{"albergue", []string{"shelter"}},
		{"shelter", []string{"shelter"}},
		{"refugio", []string{"shelter", "migration"}}, // in Mexico, refugio is also asylum
		{"psicosocial", []string{"psychosocial"}},
		{"psicológica", []string{"psychosocial"}},
		{"salud mental", []string{"psychosocial"}}, // a phrase: not every health service
		{"mental health", []string{"psychosocial"}},
		{"salud", []string{"health"}},
		{"seguridad digital", []string{"digital-security"}},
		{"digital security", []string{"digital-security"}},
		{"seguridad", []string{"digital-security", "protection"}},
		{"asilo", []string{"migration"}},
		{"empleo", []string{"work"}},
		{"beca", []string{"education"}},
		{"comida", []string{"food"}},
		{"apoyo económico", []string{"financial"}},
		{"protección", []string{"protection"}},
		{"documentación", []string{"documentation"}},
		{"acompañamiento", []string{"accompaniment"}},
	} {
		wantSet(t, ix, directory.Query{Text: tc.q}, tc.want...)
	}
	// Every category is reachable by its own name.
	for _, c := range directory.Categories {
		if got := search(ix, directory.Query{Text: c}); !slices.Contains(got, c) {
			t.Errorf("search %q = %v, want it to hold %s", c, got, c)
		}
	}
}

func TestSearchIgnoresStopWords(t *testing.T) {
	ix := newIndex(t, map[string]svc{
		"mad": {name: "Abogados por el asilo", cats: []string{"legal"}, areas: []directory.Area{{City: "Madrid", Country: "ES"}}},
		"bog": {name: "Abogados por el asilo", cats: []string{"legal"}, areas: []directory.Area{{City: "Bogotá", Country: "CO"}}},
	})
	for _, q := range []string{
		"necesito un abogado en Madrid",
		"I need a lawyer in Madrid",
		"abogado en españa",
	} {
		rs := ix.Search(directory.Query{Text: q}, searchNow)
		if got := ids(rs); !slices.Equal(got, []string{"mad"}) || rs[0].Partial {
			t.Errorf("search %q = %v (partial %v), want [mad], not partial", q, got, len(rs) > 0 && rs[0].Partial)
		}
	}
	// Service words only rank: "ayuda" is in neither entry.
	wantSet(t, ix, directory.Query{Text: "ayuda legal"}, "mad", "bog")
	// A query of stop words only lists everything.
	wantSet(t, ix, directory.Query{Text: "de la"}, "mad", "bog")
}

func TestSearchNameMatchBeatsDescription(t *testing.T) {
	ix := newIndex(t, map[string]svc{
		// "a-" sorts first, so only the score can put "name" ahead.
		"a-desc": {name: "Colectivo Jade", desc: "Acompañamos a defensoras de la tierra.", cats: []string{"legal"}},
		"name":   {name: "Red de defensoras", desc: "Acompañamiento legal.", cats: []string{"legal"}},
	})
	wantIDs(t, ix, directory.Query{Text: "defensoras"}, "name", "a-desc")
}

func TestSearchInactiveShownLast(t *testing.T) {
	ix := newIndex(t, map[string]svc{
		"closed": {name: "Albergue La Esperanza", desc: "Albergue para familias.", status: "inactive", cats: []string{"shelter"}},
		"paused": {name: "Albergue del Norte", status: "temporarily-closed", cats: []string{"shelter"}},
		"open":   {name: "Casa Tochan", desc: "Hospedaje temporal.", cats: []string{"shelter"}},
	})
	rs := ix.Search(directory.Query{Text: "albergue"}, searchNow)
	if got := ids(rs); !slices.Equal(got, []string{"open", "paused", "closed"}) {
		t.Fatalf("search albergue = %v, want open, then temporarily closed, then inactive", got)
	}
	if rs[2].Score <= rs[0].Score {
		t.Errorf("inactive entry scored %v, open %v: the order should come from status, not score", rs[2].Score, rs[0].Score)
	}
}

func TestSearchFilters(t *testing.T) {
	ix := newIndex(t, map[string]svc{
		"cdmx": {name: "Defensa legal CDMX", cats: []string{"legal"}, langs: []string{"es"},
			areas: []directory.Area{{City: "Ciudad de México", Country: "MX"}}},
		"bog-en": {name: "Legal aid Bogotá", cats: []string{"legal", "migration"}, langs: []string{"es", "en"},
			areas: []directory.Area{{City: "Bogotá", Country: "CO"}}},
		"bog-shel": {name: "Albergue Bogotá", cats: []string{"shelter"}, langs: []string{"es"},
			areas: []directory.Area{{City: "Bogota", Country: "CO"}}},
		"sur": {name: "Casa del migrante", cats: []string{"shelter", "migration"}, langs: []string{"es", "mam"},
			areas: []directory.Area{{Text: "Frontera sur", Country: "MX"}}},
		"online": {name: "Seguridad digital", cats: []string{"digital-security"}, langs: []string{"en"},
			areas: []directory.Area{{Text: "En línea"}}},
	})
	for _, tc := range []struct {
		q    directory.Query
		want []string
	}{
		{directory.Query{Category: "legal"}, []string{"cdmx", "bog-en"}},
		{directory.Query{Category: "Legal"}, nil}, // exact value
		{directory.Query{Language: "en"}, []string{"bog-en", "online"}},
		{directory.Query{Language: "mam"}, []string{"sur"}},
		{directory.Query{Area: "bogota"}, []string{"bog-en", "bog-shel"}},
		{directory.Query{Area: "BOGOTÁ"}, []string{"bog-en", "bog-shel"}},
		{directory.Query{Area: "co"}, []string{"bog-en", "bog-shel"}},
		{directory.Query{Area: "MX"}, []string{"cdmx", "sur"}},
		{directory.Query{Area: "México"}, []string{"cdmx", "sur"}}, // the country, and the city's name
		{directory.Query{Area: "Colombia"}, []string{"bog-en", "bog-shel"}},
		{directory.Query{Area: "frontera sur"}, []string{"sur"}},
		{directory.Query{Area: "en linea"}, []string{"online"}},
		{directory.Query{Area: "Lima"}, nil},
		{directory.Query{Category: "legal", Area: "CO"}, []string{"bog-en"}},
		{directory.Query{Category: "shelter", Language: "es", Area: "MX"}, []string{"sur"}},
		{directory.Query{Text: "legal", Area: "bogotá"}, []string{"bog-en"}},
		{directory.Query{Text: "albergue", Language: "en"}, nil},
		{directory.Query{Text: "migrante", Category: "shelter"}, []string{"sur"}},
		{directory.Query{}, []string{"cdmx", "bog-en", "bog-shel", "sur", "online"}},
	} {
		wantSet(t, ix, tc.q, tc.want...)
	}
	// An empty query with filters lists in name order.
	wantIDs(t, ix, directory.Query{Area: "CO"}, "bog-shel", "bog-en")
	// A place typed into the text matches the areas too.
	wantSet(t, ix, directory.Query{Text: "albergue bogota"}, "bog-shel")
	wantSet(t, ix, directory.Query{Text: "abogado colombia"}, "bog-en")
}

func TestSearchPartialWhenNothingMatchesEverything(t *testing.T) {
	ix := newIndex(t, map[string]svc{
		"abog": {name: "Abogadas por la memoria", cats: []string{"legal"}},
		"psi":  {name: "Escucha", cats: []string{"psychosocial"}},
	})
	rs := ix.Search(directory.Query{Text: "abogada xyzzy"}, searchNow)
	if got := ids(rs); !slices.Equal(got, []string{"abog"}) || !rs[0].Partial {
		t.Fatalf("search with an unknown word = %v, want [abog] marked partial", got)
	}
	rs = ix.Search(directory.Query{Text: "abogada memoria"}, searchNow)
	if len(rs) != 1 || rs[0].Partial {
		t.Fatalf("full match = %+v, want one result, not partial", rs)
	}
	wantIDs(t, ix, directory.Query{Text: "xyzzy"})
	// Filters stay strict in a partial search.
	wantIDs(t, ix, directory.Query{Text: "abogada xyzzy", Category: "psychosocial"})
}

func TestSearchReplaceAndRemove(t *testing.T) {
	ix := directory.NewIndex()
	key := "k/svc"
	ix.Put(key, directory.PublicKey{}, svc{name: "Albergue Tochan", desc: "Camas para hombres migrantes.", cats: []string{"shelter"}}.entry("svc", 1))
	wantIDs(t, ix, directory.Query{Text: "tochan"}, "svc")

	// seq 2 renames the service: the old words must not find it.
	ix.Put(key, directory.PublicKey{}, svc{name: "Casa Xochiquetzal", desc: "Acompañamiento a mujeres.", cats: []string{"accompaniment"}}.entry("svc", 2))
	for _, q := range []directory.Query{{Text: "tochan"}, {Text: "hombres"}, {Category: "shelter"}, {Text: "albergue"}} {
		wantIDs(t, ix, q)
	}
	rs := ix.Search(directory.Query{Text: "xochiquetzal"}, searchNow)
	if len(rs) != 1 || rs[0].Entry.Seq != 2 {
		t.Fatalf("search after replace = %+v, want seq 2", rs)
	}
	if ix.Len() != 1 {
		t.Fatalf("Len = %d after a replace, want 1", ix.Len())
	}

	ix.Remove(key)
	ix.Remove(key) // twice is harmless
	for _, q := range []directory.Query{{}, {Text: "xochiquetzal"}, {Category: "accompaniment"}, {Area: "MX"}, {Language: "es"}} {
		wantIDs(t, ix, q)
	}
	if ix.Len() != 0 {
		t.Fatalf("Len = %d after remove, want 0", ix.Len())
	}

	// A deleted entry removes; the slot is reused cleanly.
	ix.Put(key, directory.PublicKey{}, svc{name: "Otra casa"}.entry("svc", 3))
	ix.Put(key, directory.PublicKey{}, &directory.Entry{ID: "svc", Seq: 4, Deleted: true})
	wantIDs(t, ix, directory.Query{})
	ix.Put("k/new", directory.PublicKey{}, svc{name: "Casa nueva"}.entry("new", 1))
	wantIDs(t, ix, directory.Query{Text: "casa"}, "new")
}

func TestSearchHidesExpired(t *testing.T) {
	exp := searchNow.Add(time.Hour)
	ix := newIndex(t, map[string]svc{
		"soon": {name: "Albergue temporal", expires: exp, cats: []string{"shelter"}},
		"long": {name: "Albergue permanente", cats: []string{"shelter"}},
	})
	for _, tc := range []struct {
		at   time.Time
		want []string
	}{
		{exp.Add(-time.Second), []string{"long", "soon"}},
		{exp, []string{"long"}},
		{exp.Add(time.Second), []string{"long"}},
	} {
		for _, q := range []directory.Query{{Text: "albergue"}, {Category: "shelter"}, {}} {
			got := ids(ix.Search(q, tc.at))
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("at expiry%+v, search %+v = %v, want %v", tc.at.Sub(exp), q, got, tc.want)
			}
		}
	}
}

func TestSearchLimit(t *testing.T) {
	svcs := map[string]svc{}
	for i := range 600 {
		svcs[fmt.Sprintf("s%03d", i)] = svc{name: fmt.Sprintf("Albergue %03d", i), cats: []string{"shelter"}}
	}
	ix := newIndex(t, svcs)
	for _, tc := range []struct{ limit, want int }{{0, directory.DefaultLimit}, {3, 3}, {10000, directory.MaxLimit}} {
		rs := ix.Search(directory.Query{Text: "albergue", Limit: tc.limit}, searchNow)
		if len(rs) != tc.want {
			t.Errorf("Limit %d: %d results, want %d", tc.limit, len(rs), tc.want)
		}
		// Equal scores: by name.
		if rs[0].Entry.ID != "s000" || rs[len(rs)-1].Entry.ID != fmt.Sprintf("s%03d", tc.want-1) {
			t.Errorf("Limit %d: first %s, last %s: want name order", tc.limit, rs[0].Entry.ID, rs[len(rs)-1].Entry.ID)
		}
	}
}

// Every node must show the same results for the same entries, whatever
// order they arrived in and whatever came and went before.
func TestSearchDeterministic(t *testing.T) {
	names := []string{"Albergue", "Abogadas", "Refugio", "Asesoría psicológica", "Casa", "Legal aid"}
	descs := []string{"Acompañamiento legal en trámites de asilo.", "Camas y comida para familias migrantes.",
		"Atención psicosocial a defensoras.", "Digital security for journalists.", ""}
	cities := []directory.Area{{City: "Bogotá", Country: "CO"}, {City: "Madrid", Country: "ES"}, {City: "Ciudad de México", Country: "MX"}}
	rng := rand.New(rand.NewPCG(1, 2))
	var entries []*directory.Entry
	for i := range 200 {
		s := svc{
			name:  names[rng.IntN(len(names))], // many equal names and scores
			desc:  descs[rng.IntN(len(descs))],
			cats:  []string{directory.Categories[rng.IntN(len(directory.Categories))]},
			langs: [][]string{{"es"}, {"en"}, {"es", "en"}}[rng.IntN(3)],
			areas: []directory.Area{cities[rng.IntN(len(cities))]},
		}
		entries = append(entries, s.entry(fmt.Sprintf("e%03d", i), 2))
	}
	queries := []directory.Query{
		{}, {Text: "albergue"}, {Text: "asesoria psicologica"}, {Text: "legal asilo"}, {Text: "abog"},
		{Text: "refugio xyzzy"}, {Category: "legal"}, {Language: "en", Area: "madrid"}, {Text: "familias", Area: "CO"},
	}
	build := func(seed uint64) *directory.Index {
		r := rand.New(rand.NewPCG(seed, seed))
		ix := directory.NewIndex()
		// Noise that is later replaced or removed must leave no trace.
		for i := range 50 {
			ix.Put(fmt.Sprintf("k/e%03d", r.IntN(len(entries))), directory.PublicKey{}, svc{name: "Ruido temporal", desc: "palabras efímeras únicas"}.entry("noise", 1))
			ix.Put(fmt.Sprintf("k/gone%d", i), directory.PublicKey{}, svc{name: "Albergue fantasma"}.entry("gone", 1))
		}
		for _, i := range r.Perm(len(entries)) {
			ix.Put("k/"+entries[i].ID, directory.PublicKey{}, entries[i])
		}
		for i := range 50 {
			ix.Remove(fmt.Sprintf("k/gone%d", i))
		}
		return ix
	}
	want := build(1)
	for seed := uint64(2); seed < 6; seed++ {
		got := build(seed)
		for _, q := range queries {
			q.Limit = directory.MaxLimit
			a, b := want.Search(q, searchNow), got.Search(q, searchNow)
			if len(a) == 0 && q.Text != "refugio xyzzy" {
				t.Errorf("search %+v found nothing; the test is too weak", q)
			}
			if len(a) != len(b) {
				t.Fatalf("seed %d, search %+v: %d results, want %d", seed, q, len(b), len(a))
			}
			for i := range a {
				if a[i].Key != b[i].Key || a[i].Score != b[i].Score || a[i].Entry != b[i].Entry || a[i].Partial != b[i].Partial {
					t.Fatalf("seed %d, search %+v, result %d = %s (%v), want %s (%v)", seed, q, i, b[i].Key, b[i].Score, a[i].Key, a[i].Score)
				}
			}
		}
	}
}

func TestSearchConcurrent(t *testing.T) {
	ix := directory.NewIndex()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				key := fmt.Sprintf("k/%d-%d", w, i%20)
				ix.Put(key, directory.PublicKey{}, svc{name: fmt.Sprintf("Albergue %d", i)}.entry("x", uint64(i+1)))
				if i%3 == 0 {
					ix.Remove(key)
				}
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				for _, r := range ix.Search(directory.Query{Text: "albergue", Area: "mexico"}, searchNow) {
					if r.Entry == nil {
						t.Error("result without an entry")
						return
					}
				}
				ix.Len()
			}
		}()
	}
	wg.Wait()
}

// The state feeds the index: publish, replace, delete, as a node sees them.
func TestStateSearchFollowsEntries(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	s := nw.State()
	mustApply(t, s, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"), nw.Entry(t, org, "asesoria", 1))
	for _, q := range []directory.Query{{Text: "ASESORÍA"}, {Text: "abogada"}, {Category: "legal"}, {Area: "ciudad de mexico"}, {Language: "es"}} {
		if res := s.Search(q); len(res) != 1 {
			t.Errorf("search %+v = %d results, want 1", q, len(res))
		}
	}
	e := dirtest.SampleEntry("asesoria", 2, nw.Now)
	e.Service.Name = "Refugio Tochan"
	mustApply(t, s, nw.Sign(t, e, org))
	if res := s.Search(directory.Query{Text: "asesoria juridica personas defensoras"}); len(res) != 0 && !res[0].Partial {
		t.Errorf("old name still matches fully after seq 2: %+v", res)
	}
	if res := s.Search(directory.Query{Text: "tochan"}); len(res) != 1 || res[0].Entry.Seq != 2 {
		t.Errorf("search tochan = %+v, want seq 2", res)
	}
	del := &directory.Entry{ID: "asesoria", Seq: 3, Issued: nw.Now.Unix(), Expires: nw.Now.Add(time.Hour).Unix(), Deleted: true}
	mustApply(t, s, nw.Sign(t, del, org))
	if res := s.Search(directory.Query{}); len(res) != 0 {
		t.Errorf("search after delete = %d results, want 0", len(res))
	}
}

// Replacing and removing entries must leave the index as if only the
// survivors had ever been put.
func TestSearchLeavesNoStalePostings(t *testing.T) {
	final := map[string]*directory.Entry{}
	ix := directory.NewIndex()
	rng := rand.New(rand.NewPCG(7, 7))
	words := []string{"albergue", "abogadas", "refugio", "única", "xochitl", "madrid", "línea", "compañía"}
	for i := range 500 {
		id := fmt.Sprintf("e%02d", rng.IntN(40))
		if rng.IntN(4) == 0 {
			ix.Remove("k/" + id)
			delete(final, id)
			continue
		}
		s := svc{
			name:  fmt.Sprintf("%s %s %d", words[rng.IntN(len(words))], words[rng.IntN(len(words))], i),
			desc:  fmt.Sprintf("%s y %s", words[rng.IntN(len(words))], words[rng.IntN(len(words))]),
			cats:  []string{directory.Categories[rng.IntN(len(directory.Categories))]},
			areas: []directory.Area{{City: words[rng.IntN(len(words))], Country: "MX"}},
		}
		if prev, ok := final[id]; ok && rng.IntN(2) == 0 {
			// An edit of the description only.
			s.name, s.cats, s.areas = prev.Service.Name, prev.Service.Categories, prev.Service.Areas
		}
		e := s.entry(id, uint64(i+1))
		ix.Put("k/"+id, directory.PublicKey{}, e)
		final[id] = e
	}
	fresh := directory.NewIndex()
	for id, e := range final {
		fresh.Put("k/"+id, directory.PublicKey{}, e)
	}
	if got, want := ix.Stats(), fresh.Stats(); got != want {
		t.Fatalf("after churn: %+v, a fresh index of the same entries: %+v", got, want)
	}
	for _, q := range []directory.Query{{}, {Text: "albergue"}, {Text: "compania"}, {Area: "madrid"}, {Category: "legal"}} {
		q.Limit = directory.MaxLimit
		if got, want := search(ix, q), search(fresh, q); !slices.Equal(got, want) {
			t.Errorf("after churn, search %+v = %v, a fresh index gives %v", q, got, want)
		}
	}
	for id := range final {
		ix.Remove("k/" + id)
	}
	if got := ix.Stats(); got != (directory.IndexStats{}) {
		t.Fatalf("after removing everything: %+v, want empty", got)
	}
}

// Names arriving in an order that keeps landing in the same gap of the
// name order must still list alphabetically.
func TestSearchNameOrderUnderSkewedInserts(t *testing.T) {
	ix := directory.NewIndex()
	put := func(id, name string) {
		ix.Put("k/"+id, directory.PublicKey{}, svc{name: name}.entry(id, 1))
	}
	put("z", "Zeta")
	var want []string
	for i := range 300 {
		id := fmt.Sprintf("a%03d", i)
		put(id, "Albergue "+id) // each sorts just before Zeta, after the last
		want = append(want, id)
	}
	for i := range 100 {
		id := fmt.Sprintf("m%03d", 99-i)
		put(id, "Mesa "+id) // each sorts just after the Albergues, before the last
	}
	for i := range 100 {
		want = append(want, fmt.Sprintf("m%03d", i))
	}
	want = append(want, "z")
	got := search(ix, directory.Query{Limit: directory.MaxLimit})
	if !slices.Equal(got, want) {
		t.Fatalf("listing = %v\nwant %v", got, want)
	}
	for i := range 300 {
		ix.Remove(fmt.Sprintf("k/a%03d", i))
	}
	wantIDs(t, ix, directory.Query{Text: "albergue"})
	if n := len(search(ix, directory.Query{})); n != 50 {
		t.Fatalf("after removals, %d listed, want 50", n)
	}
}

// Without words, results list open services first, then by name, whichever
// way the index gathers them (walking its name order, or ranking a few).
func TestSearchListingOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	names := []string{"Álamo", "alameda", "Albergue", "Zacate", "Ñandutí", "nube", "Casa", "casa", "Éxodo"}
	statuses := []string{"active", "active", "inactive", "temporarily-closed"}
	svcs := map[string]svc{}
	for i := range 320 {
		s := svc{name: names[rng.IntN(len(names))], status: statuses[rng.IntN(len(statuses))],
			cats: []string{"legal"}, langs: []string{"es"}}
		if i%32 == 0 {
			s.cats, s.langs = []string{"food"}, []string{"es", "mam"}
		}
		svcs[fmt.Sprintf("e%03d", i)] = s
	}
	ix := newIndex(t, svcs)
	tier := map[string]int{"active": 0, "temporarily-closed": 1, "inactive": 2}
	for _, q := range []directory.Query{{}, {Language: "es"}, {Category: "food"}, {Language: "mam"}, {Category: "legal", Language: "es"}} {
		q.Limit = directory.MaxLimit
		var want []string
		for id, s := range svcs {
			if (q.Category == "" || s.cats[0] == q.Category) && (q.Language == "" || slices.Contains(s.langs, q.Language)) {
				want = append(want, id)
			}
		}
		slices.SortFunc(want, func(a, b string) int {
			sa, sb := svcs[a], svcs[b]
			if d := tier[sa.status] - tier[sb.status]; d != 0 {
				return d
			}
			if d := strings.Compare(directory.Fold(sa.name), directory.Fold(sb.name)); d != 0 {
				return d
			}
			if d := strings.Compare(sa.name, sb.name); d != 0 {
				return d
			}
			return strings.Compare(a, b)
		})
		wantIDs(t, ix, q, want...)
	}
}

// An index that put many entries with its name order and lexicon deferred (as a node
// does while it loads its store) lists and ranks exactly as one that kept
// the order all along: after SettleOrder, after a search settled it, and
// after more changes made once it was settled.
func TestSearchOrderDeferredThenSettled(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 4))
	names := []string{"Álamo", "alameda", "Albergue", "Zacate", "Ñandutí", "nube", "Casa", "casa", "Éxodo", "Refugio Norte"}
	statuses := []string{"active", "active", "inactive", "temporarily-closed"}
	plain, bulk := directory.NewIndex(), directory.NewIndex()
	live := []string{}
	step := func() {
		id := fmt.Sprintf("e%04d", rng.IntN(1500))
		if rng.IntN(8) == 0 && len(live) > 0 {
			id = live[rng.IntN(len(live))]
			plain.Remove("k/" + id)
			bulk.Remove("k/" + id)
			live = slices.DeleteFunc(live, func(x string) bool { return x == id })
			return
		}
		s := svc{name: names[rng.IntN(len(names))], status: statuses[rng.IntN(len(statuses))],
			desc: fmt.Sprintf("Asesoría %d clave%d", rng.IntN(40), rng.IntN(3000)), cats: []string{[]string{"legal", "food", "shelter"}[rng.IntN(3)]}}
		e := s.entry(id, 1)
		plain.Put("k/"+id, directory.PublicKey{}, e)
		bulk.Put("k/"+id, directory.PublicKey{}, e)
		if !slices.Contains(live, id) {
			live = append(live, id)
		}
	}
	same := func(when string) {
		t.Helper()
		for _, q := range []directory.Query{{}, {Category: "food"}, {Category: "shelter"}, {Text: "asesoría"}, {Text: "casa"}, {Text: "albergue", Category: "legal"},
			{Text: "clave1"}, {Text: "clave27"}, {Text: "asesoría clave"}} {
			q.Limit = directory.MaxLimit
			if got, want := search(bulk, q), search(plain, q); !slices.Equal(got, want) {
				t.Fatalf("%s, search %+v:\ndeferred %v\nkept     %v", when, q, got, want)
			}
		}
	}
	bulk.DeferOrder()
	for range 2000 {
		step()
	}
	bulk.SettleOrder()
	same("settled")
	for range 300 {
		step()
	}
	same("changed after settling")
	bulk.DeferOrder()
	for range 1000 {
		step()
	}
	same("settled by a search")
	for range 300 {
		step()
	}
	same("changed after a search settled it")
}
