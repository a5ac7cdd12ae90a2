package directory

import (
	"fmt"
	"slices"
	"time"
)

// Entry is one service or contact published by a member organization. The
// organization owns the ID within its own key: the directory keys entries by
// (publisher, ID), and the highest Seq wins. A tombstone (Deleted) removes
// the entry and carries no service.
type Entry struct {
	ID      string   `cbor:"1,keyasint" json:"id"`
	Seq     uint64   `cbor:"2,keyasint" json:"seq"`
	Issued  int64    `cbor:"3,keyasint" json:"issued"`
	Expires int64    `cbor:"4,keyasint" json:"expires"`
	Deleted bool     `cbor:"5,keyasint,omitempty" json:"deleted,omitempty"`
	Service *Service `cbor:"6,keyasint,omitempty" json:"service,omitempty"`
}

// Superseding versions. A node forgets an entry slot once its newest
// version expires: Expire drops it, the store prunes it, and after a
// restart not even its seq is left. An older version that has not expired
// yet, kept by a node that was offline or by an insider, is then taken
// again and shown: a deleted entry comes back, an update reverts. So a
// publisher dates every new version to expire no sooner than the versions
// it supersedes. Nodes cannot check this: which versions a record
// supersedes depends on which ones a node saw, so refusing it would make
// the state depend on the order of arrival.

// Tombstone is the version that deletes cur, issued at now under policy p.
// It lives the charter's whole max_entry_lifetime: a version is shown only
// while it expires within that lifetime of its issue date, so every
// version issued before the tombstone expires with it or sooner. cur alone
// is not enough to go by: an older version may outlive it (one published
// by a release that let an update shorten the expiry).
func Tombstone(cur *Entry, now time.Time, p Policy) *Entry {
	issued := now.Unix()
	return &Entry{ID: cur.ID, Seq: cur.Seq + 1, Issued: issued, Expires: max(cur.Expires, issued+lifeSeconds(p)), Deleted: true}
}

// SupersedingExpiry is when a new version of an entry, issued at now,
// expires if its publisher asked for want and cur is the version it
// replaces (nil for a new entry): never before cur, which by the same rule
// outlives every version before it. An organization that wants an entry
// gone sooner deletes it. The extension stops at p's lifetime from now, so
// the new version is still shown; a cur dated beyond that is outside the
// policy and not shown either.
func SupersedingExpiry(cur *Entry, now time.Time, want int64, p Policy) int64 {
	if cur == nil {
		return want
	}
	return max(want, min(cur.Expires, now.Unix()+lifeSeconds(p)))
}

func lifeSeconds(p Policy) int64 { return int64(p.MaxEntryLife() / time.Second) }

// Service follows Open Referral HSDS 3.0 where it has a field for the idea.
type Service struct {
	Name               string    `cbor:"1,keyasint" json:"name"`
	Description        string    `cbor:"2,keyasint,omitempty" json:"description,omitempty"`
	Status             string    `cbor:"3,keyasint" json:"status"`
	Categories         []string  `cbor:"4,keyasint" json:"categories"`
	Languages          []string  `cbor:"5,keyasint" json:"languages"`
	Areas              []Area    `cbor:"6,keyasint,omitempty" json:"areas,omitempty"`
	Schedules          []string  `cbor:"7,keyasint,omitempty" json:"schedules,omitempty"`
	Eligibility        string    `cbor:"8,keyasint,omitempty" json:"eligibility,omitempty"`
	ApplicationProcess string    `cbor:"9,keyasint,omitempty" json:"application_process,omitempty"`
	Fees               string    `cbor:"10,keyasint,omitempty" json:"fees,omitempty"`
	Contacts           []Contact `cbor:"11,keyasint" json:"contacts"`
	Intake             *Intake   `cbor:"12,keyasint,omitempty" json:"intake,omitempty"`
	Alert              string    `cbor:"13,keyasint,omitempty" json:"alert,omitempty"`
	LastVerified       string    `cbor:"14,keyasint,omitempty" json:"last_verified,omitempty"` // YYYY-MM-DD
}

// Area is where a service is offered: a city, a country, or free text
// ("online", "frontera sur").
type Area struct {
	City    string `cbor:"1,keyasint,omitempty" json:"city,omitempty"`
	Country string `cbor:"2,keyasint,omitempty" json:"country,omitempty"` // ISO 3166-1 alpha-2
	Text    string `cbor:"3,keyasint,omitempty" json:"text,omitempty"`
}

// Contact is one way to reach the service.
type Contact struct {
	Kind      string   `cbor:"1,keyasint" json:"kind"`
	Value     string   `cbor:"2,keyasint" json:"value"`
	Preferred bool     `cbor:"3,keyasint,omitempty" json:"preferred,omitempty"`
	Languages []string `cbor:"4,keyasint,omitempty" json:"languages,omitempty"`
	PGP       string   `cbor:"5,keyasint,omitempty" json:"pgp,omitempty"`
}

// Intake says what first contact looks like.
type Intake struct {
	FirstContact    string `cbor:"1,keyasint,omitempty" json:"first_contact,omitempty"`
	ResponseTime    string `cbor:"2,keyasint,omitempty" json:"response_time,omitempty"`
	VettingRequired bool   `cbor:"3,keyasint,omitempty" json:"vetting_required,omitempty"`
	Always          bool   `cbor:"4,keyasint,omitempty" json:"always_open,omitempty"` // 24/7
}

// Service statuses (HSDS).
var Statuses = []string{"active", "inactive", "temporarily-closed"}

// Categories is the closed list of needs a service can meet; the UI
// translates each.
var Categories = []string{
	"legal", "shelter", "health", "psychosocial", "digital-security",
	"migration", "work", "education", "food", "financial", "protection",
	"documentation", "accompaniment",
}

// ContactKinds lists the channels a contact may use.
var ContactKinds = []string{"signal", "whatsapp", "email", "phone", "onion", "matrix", "web"}

func (*Entry) RecordType() RecordType { return TypeEntry }

// FieldError names the entry field that failed, so forms can show the
// message next to it.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (e *Entry) check() error {
	if !validEntryID(e.ID) {
		return fieldErr("id", "use 1 to 64 lowercase letters, digits and dashes, starting with a letter or digit")
	}
	if e.Seq == 0 {
		return fieldErr("seq", "starts at 1")
	}
	if err := checkTime("issued", e.Issued); err != nil {
		return fieldErr("issued", "%v", err)
	}
	if err := checkTime("expires", e.Expires); err != nil {
		// The protocol's date range is the only bound on an entry's life a
		// node checks on arrival; the charter's max_entry_lifetime decides
		// only whether it is shown (see outsidePolicy).
		return fieldErr("expires", "%v", err)
	}
	if e.Expires <= e.Issued {
		return fieldErr("expires", "must be after issued")
	}
	if e.Deleted {
		if e.Service != nil {
			return fieldErr("service", "a deleted entry carries no service")
		}
		return nil
	}
	if e.Service == nil {
		return fieldErr("service", "is required")
	}
	return e.Service.check()
}

func (s *Service) check() error {
	textFields := []struct {
		name, value string
		min, max    int
	}{
		{"name", s.Name, 1, 200},
		{"description", s.Description, 0, 4000},
		{"eligibility", s.Eligibility, 0, 2000},
		{"application_process", s.ApplicationProcess, 0, 2000},
		{"fees", s.Fees, 0, 500},
		{"alert", s.Alert, 0, 500},
	}
	for _, f := range textFields {
		if err := checkText(f.name, f.value, f.min, f.max); err != nil {
			return fieldErr(f.name, "%v", err)
		}
	}
	if !slices.Contains(Statuses, s.Status) {
		return fieldErr("status", "%q is not one of %v", s.Status, Statuses)
	}
	if len(s.Categories) == 0 || len(s.Categories) > 8 {
		return fieldErr("categories", "give 1 to 8")
	}
	for _, c := range s.Categories {
		if !slices.Contains(Categories, c) {
			return fieldErr("categories", "%q is not one of %v", c, Categories)
		}
	}
	if err := checkLanguages("languages", s.Languages, true); err != nil {
		return err
	}
	if len(s.Areas) > 32 {
		return fieldErr("areas", "at most 32")
	}
	for i, a := range s.Areas {
		field := fmt.Sprintf("areas[%d]", i)
		if a.City == "" && a.Country == "" && a.Text == "" {
			return fieldErr(field, "give a city, a country or a text")
		}
		if a.Country != "" && !countryPattern.MatchString(a.Country) {
			return fieldErr(field+".country", "%q is not a two-letter ISO 3166 code such as MX or CO", a.Country)
		}
		if err := checkText("city", a.City, 0, 120); err != nil {
			return fieldErr(field+".city", "%v", err)
		}
		if err := checkText("text", a.Text, 0, 200); err != nil {
			return fieldErr(field+".text", "%v", err)
		}
	}
	if len(s.Schedules) > 14 {
		return fieldErr("schedules", "at most 14")
	}
	for _, sc := range s.Schedules {
		if err := checkText("schedule", sc, 1, 200); err != nil {
			return fieldErr("schedules", "%v", err)
		}
	}
	if len(s.Contacts) == 0 || len(s.Contacts) > 16 {
		return fieldErr("contacts", "give 1 to 16 ways to reach the service")
	}
	for i, c := range s.Contacts {
		field := fmt.Sprintf("contacts[%d]", i)
		if !slices.Contains(ContactKinds, c.Kind) {
			return fieldErr(field+".kind", "%q is not one of %v", c.Kind, ContactKinds)
		}
		if err := checkText("value", c.Value, 1, 300); err != nil {
			return fieldErr(field+".value", "%v", err)
		}
		if err := checkLanguages(field+".languages", c.Languages, false); err != nil {
			return err
		}
		if err := checkText("pgp", c.PGP, 0, 60); err != nil {
			return fieldErr(field+".pgp", "%v", err)
		}
	}
	if s.Intake != nil {
		if err := checkText("first_contact", s.Intake.FirstContact, 0, 500); err != nil {
			return fieldErr("intake.first_contact", "%v", err)
		}
		if err := checkText("response_time", s.Intake.ResponseTime, 0, 100); err != nil {
			return fieldErr("intake.response_time", "%v", err)
		}
	}
	if s.LastVerified != "" {
		if _, err := time.Parse(time.DateOnly, s.LastVerified); err != nil || !datePattern.MatchString(s.LastVerified) {
			return fieldErr("last_verified", "%q is not a date like 2026-03-01", s.LastVerified)
		}
	}
	return nil
}

func checkLanguages(field string, langs []string, required bool) error {
	if required && len(langs) == 0 {
		return fieldErr(field, "give at least one ISO 639 code such as es or en")
	}
	if len(langs) > 16 {
		return fieldErr(field, "at most 16")
	}
	for _, l := range langs {
		if !languagePattern.MatchString(l) {
			return fieldErr(field, "%q is not a lowercase ISO 639 code such as es, en or quc", l)
		}
	}
	return nil
}

// CheckService validates a service as a publisher would write it, before
// it is signed; the error is a *FieldError naming the field.
func CheckService(s *Service) error {
	if s == nil {
		return fieldErr("service", "is required")
	}
	return s.check()
}
