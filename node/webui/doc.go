// Package webui is the daemon's web interface: server-rendered HTML pages,
// in Spanish and English, for activists who look services up and for the
// organizations and stewards who manage the directory. It owns the pages,
// their translations (the message catalogs in locales/), the browser
// sessions of people who signed in with the API token, CSRF protection and
// the Host check it repeats behind the daemon's own.
//
// It never signs, seals or validates records and never touches keys: every
// read and every change goes through Backend, which the daemon implements,
// and the daemon and package directory decide what is valid. The one
// directory call it makes, CheckService, is asked only to place the
// directory's own verdict next to the form field it concerns.
//
// Everything works without JavaScript; one small optional script adds copy
// buttons. Pages load nothing from anywhere but this node, and are sent
// with no-store so a seized device's browser cache holds no search.
package webui
