package directory_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// The benchmark corpus imitates what organizations publish: Spanish-first
// services with some English, in the cities where exiles live, with
// category-typical wording and organization names that make the vocabulary
// grow with the directory as a real one would.

var benchNow = dirtest.Epoch

var benchCities = []directory.Area{
	{City: "Ciudad de México", Country: "MX"}, {City: "Tapachula", Country: "MX"}, {City: "Guadalajara", Country: "MX"},
	{City: "Monterrey", Country: "MX"}, {City: "Tijuana", Country: "MX"}, {City: "Oaxaca", Country: "MX"},
	{City: "Bogotá", Country: "CO"}, {City: "Medellín", Country: "CO"}, {City: "Cúcuta", Country: "CO"}, {City: "Cali", Country: "CO"},
	{City: "Madrid", Country: "ES"}, {City: "Barcelona", Country: "ES"}, {City: "Valencia", Country: "ES"},
	{City: "San José", Country: "CR"}, {City: "Ciudad de Guatemala", Country: "GT"}, {City: "Tegucigalpa", Country: "HN"},
	{City: "San Salvador", Country: "SV"}, {City: "Quito", Country: "EC"}, {City: "Lima", Country: "PE"},
	{City: "Santiago", Country: "CL"}, {City: "Buenos Aires", Country: "AR"}, {City: "Panamá", Country: "PA"},
	{City: "Miami", Country: "US"}, {City: "Houston", Country: "US"}, {City: "New York", Country: "US"},
	{City: "Toronto", Country: "CA"}, {City: "Berlín", Country: "DE"}, {City: "París", Country: "FR"},
	{Text: "En línea"}, {Text: "Online"}, {Text: "Frontera sur", Country: "MX"}, {Text: "Todo el país", Country: "CO"},
}

type benchCat struct {
	es, en   []string // name stems
	sentES   []string
	sentEN   []string
	eligible []string
}

var benchCats = map[string]benchCat{
	"legal": {
		es:     []string{"Asesoría jurídica", "Defensa legal", "Abogadas", "Clínica jurídica", "Litigio estratégico"},
		en:     []string{"Legal aid", "Lawyers", "Legal clinic"},
		sentES: []string{"Acompañamiento legal en trámites de asilo y refugio.", "Representación ante tribunales y fiscalías.", "Abogadas con experiencia en defensa de personas defensoras.", "Orientación sobre medidas cautelares y amparo."},
		sentEN: []string{"Free legal representation in asylum cases.", "Lawyers experienced in defending human-rights defenders."},
	},
	"shelter": {
		es:     []string{"Albergue", "Casa refugio", "Casa de acogida", "Hospedaje temporal"},
		en:     []string{"Shelter", "Safe house", "Emergency housing"},
		sentES: []string{"Alojamiento temporal para familias y personas defensoras.", "Camas, comida y un lugar seguro mientras se resuelve la situación.", "Estancia de hasta tres meses con acompañamiento."},
		sentEN: []string{"Temporary housing for families at risk.", "Beds and meals in a confidential location."},
	},
	"health": {
		es:     []string{"Consultorio médico", "Salud comunitaria", "Clínica"},
		en:     []string{"Community clinic", "Health care"},
		sentES: []string{"Consulta médica general y medicamentos básicos.", "Atención de salud sexual y reproductiva."},
		sentEN: []string{"General medical consultations without papers."},
	},
	"psychosocial": {
		es:     []string{"Atención psicosocial", "Acompañamiento psicológico", "Salud mental", "Escucha"},
		en:     []string{"Psychosocial support", "Trauma counseling"},
		sentES: []string{"Atención psicológica individual y grupal para personas en exilio.", "Contención emocional y manejo del trauma.", "Grupos de apoyo mutuo para defensoras."},
		sentEN: []string{"Trauma-informed therapy for exiled activists.", "Peer support groups in Spanish and English."},
	},
	"digital-security": {
		es:     []string{"Seguridad digital", "Ciberseguridad", "Protección digital"},
		en:     []string{"Digital security", "Digital safety helpline"},
		sentES: []string{"Revisión de teléfonos por spyware y configuración de Signal.", "Talleres de cifrado y manejo seguro de información.", "Respuesta a incidentes de hackeo de cuentas."},
		sentEN: []string{"Device checks for spyware and account recovery.", "Encryption workshops and secure communication."},
	},
	"migration": {
		es:     []string{"Orientación migratoria", "Casa del migrante", "Asesoría migratoria"},
		en:     []string{"Migrant services", "Asylum help desk"},
		sentES: []string{"Trámites de regularización, visa y residencia.", "Orientación para solicitar la condición de refugiado.", "Acompañamiento en la frontera sur."},
		sentEN: []string{"Help with asylum applications and residency permits."},
	},
	"work":          {es: []string{"Bolsa de trabajo", "Empleo digno"}, en: []string{"Job center"}, sentES: []string{"Vinculación laboral y capacitación para el empleo."}, sentEN: []string{"Job placement and work permits guidance."}},
	"education":     {es: []string{"Becas", "Escuela", "Talleres"}, en: []string{"Scholarships", "Language school"}, sentES: []string{"Cursos de idiomas y becas para continuar estudios."}, sentEN: []string{"Spanish and English courses."}},
	"food":          {es: []string{"Comedor comunitario", "Despensa solidaria"}, en: []string{"Food bank"}, sentES: []string{"Comida caliente de lunes a viernes."}, sentEN: []string{"Groceries for families each week."}},
	"financial":     {es: []string{"Fondo de emergencia", "Apoyo económico"}, en: []string{"Emergency fund"}, sentES: []string{"Apoyo económico de emergencia para reubicación."}, sentEN: []string{"Small grants for relocation costs."}},
	"protection":    {es: []string{"Protección integral", "Red de protección"}, en: []string{"Protection desk"}, sentES: []string{"Análisis de riesgo y planes de protección.", "Reubicación temporal ante amenazas."}, sentEN: []string{"Risk assessment and protection plans."}},
	"documentation": {es: []string{"Documentación de violaciones", "Memoria y verdad"}, en: []string{"Documentation project"}, sentES: []string{"Registro y documentación de agresiones contra defensoras."}, sentEN: []string{"Evidence collection for international mechanisms."}},
	"accompaniment": {es: []string{"Acompañamiento internacional", "Acompañantes"}, en: []string{"Protective accompaniment"}, sentES: []string{"Acompañamiento físico a audiencias y reuniones."}, sentEN: []string{"International observers accompany defenders."}},
}

var (
	benchOrgKinds = []string{"Colectivo", "Red", "Fundación", "Casa", "Centro", "Asociación", "Comité", "Collective", "Network"}
	benchSyll     = []string{"ka", "lu", "xo", "chi", "tla", "ma", "ri", "na", "qui", "ya", "te", "so", "mi", "ko", "wa", "ne", "pa", "zu", "li", "ro"}
	benchEligible = []string{"Personas defensoras de derechos humanos y sus familias.", "Mujeres defensoras y personas LGBTIQ+.", "Periodistas y activistas en exilio.", "Human-rights defenders at risk.", "Personas solicitantes de asilo."}
	benchCommon   = []string{"Atendemos con cita previa.", "Servicio gratuito y confidencial.", "Trabajamos con organizaciones aliadas en la región.", "We work in coordination with partner organizations."}
	benchStatuses = []string{"active", "active", "active", "active", "active", "active", "active", "active", "active", "active", "active", "active", "active", "active", "active", "active", "active", "temporarily-closed", "temporarily-closed", "inactive"}
)

func benchWord(r *rand.Rand) string {
	var b strings.Builder
	for range 2 + r.IntN(2) {
		b.WriteString(benchSyll[r.IntN(len(benchSyll))])
	}
	w := b.String()
	return strings.ToUpper(w[:1]) + w[1:]
}

func benchPick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func benchEntries(n int) []*directory.Entry {
	r := rand.New(rand.NewPCG(uint64(n), 42))
	out := make([]*directory.Entry, n)
	for i := range out {
		cats := []string{benchPick(r, directory.Categories)}
		for range r.IntN(3) {
			if c := benchPick(r, directory.Categories); !slices.Contains(cats, c) {
				cats = append(cats, c)
			}
		}
		bc := benchCats[cats[0]]
		english := r.IntN(4) == 0
		langs := []string{"es"}
		if english {
			langs = []string{"en", "es"}
		}
		if r.IntN(20) == 0 {
			langs = append(langs, benchPick(r, []string{"pt", "fr", "mam", "quc", "tzo", "nah"}))
		}
		areas := []directory.Area{benchPick(r, benchCities)}
		if r.IntN(5) == 0 {
			areas = append(areas, benchPick(r, benchCities))
		}
		org := benchPick(r, benchOrgKinds) + " " + benchWord(r)
		var name, desc string
		if english {
			name = benchPick(r, bc.en) + " " + org
			desc = benchPick(r, bc.sentEN) + " " + benchPick(r, bc.sentEN)
		} else {
			name = benchPick(r, bc.es) + " " + org
			desc = benchPick(r, bc.sentES) + " " + benchPick(r, bc.sentES)
		}
		if areas[0].City != "" && r.IntN(2) == 0 {
			name += " " + areas[0].City
		}
		desc += " " + benchPick(r, benchCommon)
		if r.IntN(3) == 0 {
			desc += " " + benchWord(r) + " " + strings.ToLower(benchWord(r)) + "."
		}
		e := &directory.Entry{
			ID: fmt.Sprintf("svc-%d", i), Seq: 1, Issued: benchNow.Unix(), Expires: benchNow.Add(90 * 24 * time.Hour).Unix(),
			Service: &directory.Service{
				Name: name, Description: desc, Status: benchPick(r, benchStatuses),
				Categories: cats, Languages: langs, Areas: areas,
				Contacts: []directory.Contact{{Kind: "signal", Value: "+52 55 0000 0000"}},
			},
		}
		if r.IntN(2) == 0 {
			e.Service.Eligibility = benchPick(r, benchEligible)
		}
		if r.IntN(100) == 0 {
			e.Expires = benchNow.Add(-time.Hour).Unix() // awaiting Expire
		}
		out[i] = e
	}
	return out
}

// benchQueries is the mix latency is reported over: what activists type,
// with and without filters, including the browse-everything landing page.
var benchQueries = []directory.Query{
	{Text: "abogada"},
	{Text: "asesoria juridica"},
	{Text: "refugio"},
	{Text: "shelter"},
	{Text: "psicologica"},
	{Text: "salud mental"},
	{Text: "seguridad digital"},
	{Text: "abogado madrid"},
	{Text: "albergue tapachula"},
	{Text: "legal aid asylum"},
	{Text: "necesito ayuda legal en bogota"},
	{Text: "trauma therapy"},
	{Text: "spyware signal"},
	{Text: "psic"},
	{Text: "asilo", Language: "es"},
	{Text: "xyzzy"},
	{Text: "abogada xyzzy"},
	{Text: "acompañamiento defensoras", Area: "México"},
	{Category: "legal", Area: "CO"},
	{Category: "shelter"},
	{Language: "en", Area: "Madrid"},
	{Category: "psychosocial", Language: "es", Area: "ciudad de mexico"},
	{Area: "en linea"},
	{},
}

var (
	benchMu      sync.Mutex
	benchCorpus  = map[int][]*directory.Entry{}
	benchIndexes = map[int]*directory.Index{}
)

func benchSet(n int) []*directory.Entry {
	benchMu.Lock()
	defer benchMu.Unlock()
	if es, ok := benchCorpus[n]; ok {
		return es
	}
	es := benchEntries(n)
	benchCorpus[n] = es
	return es
}

func benchBuild(es []*directory.Entry) *directory.Index {
	ix := directory.NewIndex()
	var pub directory.PublicKey
	for i, e := range es {
		pub[0], pub[1], pub[2] = byte(i), byte(i>>8), byte(i>>16)
		ix.Put("entry/"+e.ID, pub, e)
	}
	return ix
}

func benchIndex(n int) *directory.Index {
	es := benchSet(n)
	benchMu.Lock()
	defer benchMu.Unlock()
	if ix, ok := benchIndexes[n]; ok {
		return ix
	}
	ix := benchBuild(es)
	benchIndexes[n] = ix
	return ix
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds())/1e3, "max-µs")
}

// BenchmarkSearch runs the query mix round-robin and reports per-query
// latency percentiles (ns/op is their mean).
func BenchmarkSearch(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) { searchLatency(b, benchIndex(n)) })
	}
}

// BenchmarkSearchHeld is BenchmarkSearch at 100,000 entries on an index
// that keeps each entry's record, as a State's does, and decodes the
// entries of the results it returns.
func BenchmarkSearchHeld(b *testing.B) {
	es := benchSet(100_000)
	ix := directory.NewIndex()
	var pub directory.PublicKey
	for i, e := range es {
		if e.Expires <= e.Issued {
			// The corpus skips the record checks; a record cannot.
			c := *e
			c.Issued = c.Expires - 86400
			e = &c
		}
		r, err := directory.NewRecord(directory.NetworkID{}, e)
		if err != nil {
			b.Fatal(err)
		}
		pub[0], pub[1], pub[2] = byte(i), byte(i>>8), byte(i>>16)
		directory.PutHeldForTest(ix, "entry/"+e.ID, pub, r, e)
	}
	searchLatency(b, ix)
}

// searchLatency runs the query mix round-robin on ix and reports per-query
// latency percentiles (ns/op is their mean).
func searchLatency(b *testing.B, ix *directory.Index) {
	lat := make([]time.Duration, 0, 1024)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		q := benchQueries[i%len(benchQueries)]
		t0 := time.Now()
		ix.Search(q, benchNow)
		lat = append(lat, time.Since(t0))
	}
	reportLatency(b, lat)
}

// BenchmarkSearchQuery breaks the mix down, to see which query costs what.
func BenchmarkSearchQuery(b *testing.B) {
	ix := benchIndex(100_000)
	for i, q := range benchQueries {
		b.Run(fmt.Sprintf("%02d", i), func(b *testing.B) {
			for b.Loop() {
				ix.Search(q, benchNow)
			}
		})
	}
}

// BenchmarkIndexBuild indexes n entries into an empty index and reports
// the heap the index keeps per entry (the entries themselves excluded).
func BenchmarkIndexBuild(b *testing.B) {
	for _, n := range []int{100_000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			es := benchSet(n)
			b.ReportAllocs()
			var ix *directory.Index
			for b.Loop() {
				ix = benchBuild(es)
			}
			b.StopTimer()
			ix = nil
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			ix = benchBuild(es)
			runtime.GC()
			runtime.ReadMemStats(&after)
			st := ix.Stats()
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heap-B/entry")
			b.ReportMetric(float64(st.Postings)/float64(n), "postings/entry")
			b.ReportMetric(float64(st.Terms), "terms")
			runtime.KeepAlive(ix)
		})
	}
}

// BenchmarkIndexReplace is the cost of applying a new version of one entry
// (an edited description) to a full index, and of removing and re-adding
// one: what stands between a publish and it being searchable.
func BenchmarkIndexReplace(b *testing.B) {
	es := benchSet(100_000)
	ix := benchBuild(es)
	r := rand.New(rand.NewPCG(1, 1))
	b.Run("edit", func(b *testing.B) {
		for b.Loop() {
			e := es[r.IntN(len(es))]
			next := *e
			svc := *e.Service
			svc.Description += " Horario ampliado."
			next.Seq, next.Service = e.Seq+1, &svc
			ix.Put("entry/"+e.ID, directory.PublicKey{}, &next)
		}
	})
	b.Run("remove-add", func(b *testing.B) {
		for b.Loop() {
			e := es[r.IntN(len(es))]
			ix.Remove("entry/" + e.ID)
			ix.Put("entry/"+e.ID, directory.PublicKey{}, e)
		}
	})
}
