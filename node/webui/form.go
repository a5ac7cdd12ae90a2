package webui

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/ceiba-network/ceiba/directory"
)

// Row limits follow what directory accepts; the form never offers more.
const (
	maxAreaRows    = 32
	maxContactRows = 16
	spareRows      = 2 // empty rows offered after the filled ones
)

// entryForm is the create/edit form, as typed: it is re-shown with the
// person's own text when something needs fixing.
type entryForm struct {
	ID           string
	Editing      bool
	Name         string
	Description  string
	Status       string
	Categories   map[string]bool
	Languages    string
	Areas        []areaRow
	Schedules    string
	Eligibility  string
	Application  string
	Fees         string
	Contacts     []contactRow
	FirstContact string
	ResponseTime string
	Vetting      bool
	Always       bool
	Alert        string
	LastVerified string
	ExpiresDays  string

	// Errors maps a form field's name to the message shown beside it.
	Errors map[string]string
	Error  string // for what belongs to no one field

	// areaIndex and contactIndex map the service's list positions back to
	// form rows, since empty rows are skipped.
	areaIndex    []int
	contactIndex []int
}

type areaRow struct{ City, Country, Text string }

type contactRow struct {
	Kind      string
	Value     string
	Preferred bool
	Languages string
	PGP       string
}

func newEntryForm() *entryForm {
	f := &entryForm{Status: "active", Categories: map[string]bool{}, ExpiresDays: "90",
		LastVerified: time.Now().Format(time.DateOnly), Errors: map[string]string{}}
	f.pad(false)
	return f
}

// formFromService fills the form from a published entry.
func formFromService(id string, s *directory.Service) *entryForm {
	f := &entryForm{ID: id, Editing: true, Name: s.Name, Description: s.Description, Status: s.Status,
		Categories: map[string]bool{}, Languages: strings.Join(s.Languages, ", "), Schedules: strings.Join(s.Schedules, "\n"),
		Eligibility: s.Eligibility, Application: s.ApplicationProcess, Fees: s.Fees, Alert: s.Alert,
		LastVerified: s.LastVerified, ExpiresDays: "90", Errors: map[string]string{}}
	for _, c := range s.Categories {
		f.Categories[c] = true
	}
	for _, a := range s.Areas {
		f.Areas = append(f.Areas, areaRow{a.City, a.Country, a.Text})
	}
	for _, c := range s.Contacts {
		f.Contacts = append(f.Contacts, contactRow{c.Kind, c.Value, c.Preferred, strings.Join(c.Languages, ", "), c.PGP})
	}
	if in := s.Intake; in != nil {
		f.FirstContact, f.ResponseTime, f.Vetting, f.Always = in.FirstContact, in.ResponseTime, in.VettingRequired, in.Always
	}
	f.pad(false)
	return f
}

// pad leaves spareRows empty rows after the filled ones, so people can add
// a place or a contact without JavaScript; more asks for spareRows beyond
// that (the "more rows" button). Re-showing a form never grows it.
func (f *entryForm) pad(more bool) {
	want := spareRows
	if more {
		want += spareRows
	}
	for n := trailingEmpty(f.Areas, func(a areaRow) bool { return a == (areaRow{}) }); n < want && len(f.Areas) < maxAreaRows; n++ {
		f.Areas = append(f.Areas, areaRow{})
	}
	for n := trailingEmpty(f.Contacts, contactRow.empty); n < want && len(f.Contacts) < maxContactRows; n++ {
		f.Contacts = append(f.Contacts, contactRow{Kind: "signal"})
	}
}

func trailingEmpty[T any](rows []T, empty func(T) bool) int {
	n := 0
	for i := len(rows) - 1; i >= 0 && empty(rows[i]); i-- {
		n++
	}
	return n
}

// empty reports a contact row nobody filled in; its kind select always
// has a value, and an unticked "preferred" box means nothing on its own.
func (c contactRow) empty() bool { return c.Value == "" && c.Languages == "" && c.PGP == "" }

// clean normalizes what browsers send: textareas arrive with CRLF line
// ends (CR is a control character directory refuses), and stray spaces at
// the ends are never meant.
func clean(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\r':
			return '\n'
		case r < 0x20 && r != '\n' && r != '\t' || r == 0x7f:
			return -1 // pasted control characters are never meant
		}
		return r
	}, s)
	return strings.TrimSpace(norm.NFC.String(s))
}

// codes splits "es, EN quc" into ["es", "en", "quc"].
func codes(s string) []string {
	var out []string
	for _, c := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return r == ',' || r == ';' || unicode.IsSpace(r) }) {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

func rowCount(v string, limit int) int {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return min(n, limit)
}

// parseEntryForm reads the posted form. It only reshapes text into a
// Service; whether the Service is acceptable is directory's call.
func parseEntryForm(v url.Values) *entryForm {
	f := &entryForm{
		ID:           clean(v.Get("id")),
		Editing:      v.Get("editing") == "1",
		Name:         clean(v.Get("name")),
		Description:  clean(v.Get("description")),
		Status:       v.Get("status"),
		Categories:   map[string]bool{},
		Languages:    clean(v.Get("languages")),
		Schedules:    clean(v.Get("schedules")),
		Eligibility:  clean(v.Get("eligibility")),
		Application:  clean(v.Get("application_process")),
		Fees:         clean(v.Get("fees")),
		FirstContact: clean(v.Get("intake_first_contact")),
		ResponseTime: clean(v.Get("intake_response_time")),
		Vetting:      v.Get("intake_vetting") == "1",
		Always:       v.Get("intake_always") == "1",
		Alert:        clean(v.Get("alert")),
		LastVerified: clean(v.Get("last_verified")),
		ExpiresDays:  clean(v.Get("expires_days")),
		Errors:       map[string]string{},
	}
	for _, c := range v["categories"] {
		f.Categories[c] = true
	}
	for i := range rowCount(v.Get("area_rows"), maxAreaRows) {
		p := "area" + strconv.Itoa(i) + "_"
		f.Areas = append(f.Areas, areaRow{City: clean(v.Get(p + "city")), Country: strings.ToUpper(clean(v.Get(p + "country"))), Text: clean(v.Get(p + "text"))})
	}
	for i := range rowCount(v.Get("contact_rows"), maxContactRows) {
		p := "contact" + strconv.Itoa(i) + "_"
		f.Contacts = append(f.Contacts, contactRow{Kind: v.Get(p + "kind"), Value: clean(v.Get(p + "value")),
			Preferred: v.Get(p+"preferred") == "1", Languages: clean(v.Get(p + "languages")), PGP: clean(v.Get(p + "pgp"))})
	}
	return f
}

// service builds the Service the form describes, skipping empty rows.
func (f *entryForm) service() *directory.Service {
	s := &directory.Service{
		Name: f.Name, Description: f.Description, Status: f.Status,
		Languages: codes(f.Languages), Eligibility: f.Eligibility, ApplicationProcess: f.Application,
		Fees: f.Fees, Alert: f.Alert, LastVerified: f.LastVerified,
	}
	for _, c := range directory.Categories { // the canonical order, whatever the browser sent
		if f.Categories[c] {
			s.Categories = append(s.Categories, c)
		}
	}
	for c := range f.Categories {
		if !slices.Contains(directory.Categories, c) {
			s.Categories = append(s.Categories, c) // let directory name it
		}
	}
	f.areaIndex, f.contactIndex = nil, nil
	for i, a := range f.Areas {
		if a == (areaRow{}) {
			continue
		}
		s.Areas = append(s.Areas, directory.Area{City: a.City, Country: a.Country, Text: a.Text})
		f.areaIndex = append(f.areaIndex, i)
	}
	for _, line := range strings.Split(f.Schedules, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			s.Schedules = append(s.Schedules, line)
		}
	}
	for i, c := range f.Contacts {
		if c.empty() {
			continue
		}
		s.Contacts = append(s.Contacts, directory.Contact{Kind: c.Kind, Value: c.Value, Preferred: c.Preferred, Languages: codes(c.Languages), PGP: c.PGP})
		f.contactIndex = append(f.contactIndex, i)
	}
	if f.FirstContact != "" || f.ResponseTime != "" || f.Vetting || f.Always {
		s.Intake = &directory.Intake{FirstContact: f.FirstContact, ResponseTime: f.ResponseTime, VettingRequired: f.Vetting, Always: f.Always}
	}
	return s
}

// expiresDays reads the lifetime field; the daemon enforces its range.
func (f *entryForm) expiresDays() (int, bool) {
	if f.ExpiresDays == "" {
		return 0, true
	}
	n, err := strconv.Atoi(f.ExpiresDays)
	return n, err == nil
}

var listField = regexp.MustCompile(`^(areas|contacts)\[(\d+)\](?:\.(\w+))?$`)

// place puts directory's verdict next to the form field it names. The
// message is the catalog's hint for that kind of field, because
// directory's own text is English and names the wire field, not the box
// on the screen; an unknown field goes to the top of the form.
func (f *entryForm) place(l *locale, err error) {
	var fe *directory.FieldError
	if !errors.As(err, &fe) {
		f.Error = l.T("form.error.other", err.Error())
		return
	}
	name, hint := formField(fe.Field, f.areaIndex, f.contactIndex)
	if name == "" {
		f.Error = l.T("form.error.other", fe.Error())
		return
	}
	f.Errors[name] = l.T("hint." + hint)
	f.Error = l.T("form.error.fields")
}

// formField maps a directory field path to a form input name and the key
// of its hint.
func formField(field string, areaIndex, contactIndex []int) (name, hint string) {
	switch field {
	case "name", "description", "status", "categories", "languages", "schedules", "eligibility",
		"application_process", "fees", "alert", "last_verified", "areas", "contacts":
		return field, field
	case "intake.first_contact":
		return "intake_first_contact", "first_contact"
	case "intake.response_time":
		return "intake_response_time", "response_time"
	}
	m := listField.FindStringSubmatch(field)
	if m == nil {
		return "", ""
	}
	i, _ := strconv.Atoi(m[2])
	sub := m[3]
	if m[1] == "areas" {
		if i >= len(areaIndex) {
			return "areas", "areas"
		}
		row := fmt.Sprintf("area%d", areaIndex[i])
		if sub == "" {
			return row, "area"
		}
		return row + "_" + sub, "area_" + sub
	}
	if i >= len(contactIndex) {
		return "contacts", "contacts"
	}
	row := fmt.Sprintf("contact%d", contactIndex[i])
	if sub == "" {
		return row + "_value", "contact_value"
	}
	return row + "_" + sub, "contact_" + sub
}

// slug turns a service name into an entry ID directory accepts:
// lowercase ASCII letters, digits and dashes, starting with a letter or
// digit, short enough to leave room for a "-NN" suffix.
func slug(name string) string {
	const limit = 56
	var b strings.Builder
	dash := false
	for _, r := range norm.NFD.String(strings.ToLower(name)) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		case unicode.Is(unicode.Mn, r):
			// accents go; the letter they sat on stays
		default:
			dash = true
		}
	}
	s := b.String()
	if len(s) > limit {
		// Cut at a word boundary when there is one, so the ID reads well.
		cut := s[:limit]
		if i := strings.LastIndexByte(cut, '-'); i > limit/2 && s[limit] != '-' {
			cut = cut[:i]
		}
		s = cut
	}
	s = strings.Trim(s, "-")
	if s == "" {
		s = "servicio"
	}
	return s
}

// uniqueID picks an ID for a new entry that none of this organization's
// entries (deleted ones included, so none is resurrected) uses yet.
func uniqueID(name string, taken map[string]bool) string {
	base := slug(name)
	id := base
	for n := 2; taken[id]; n++ {
		id = base + "-" + strconv.Itoa(n)
	}
	return id
}
