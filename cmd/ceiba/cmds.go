package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/api"
	"github.com/ceiba-network/ceiba/node/daemon"
	"github.com/ceiba-network/ceiba/node/demo"
)

func args(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if len(a) != n {
			return fmt.Errorf("%s needs %s (see \"%s --help\")", cmd.CommandPath(), what, cmd.CommandPath())
		}
		return nil
	}
}

func initCmd(g *globals) *cobra.Command {
	var o daemon.InitOptions
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create this device's keys and configuration",
		Long: "Creates the Ceiba home: a signing key and an encryption key, protected by a passphrase,\n" +
			"a commented config.toml and the local API token. Prints the key's fingerprint, which\n" +
			"others compare with what you tell them out loud or on paper.",
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.passphrase(cmd.Context(), true)
			if err != nil {
				return err
			}
			if err := directory.CheckNewPassphrase(p); err != nil {
				return err
			}
			o.Passphrase = p
			if wf := os.Getenv("CEIBA_KDF_WORK_FACTOR"); wf != "" {
				// For tests and demos only: a weaker key derivation, never
				// below 2^10.
				n, err := strconv.Atoi(wf)
				if err != nil || n < 10 || n > 22 {
					return errors.New("CEIBA_KDF_WORK_FACTOR must be a number from 10 to 22")
				}
				o.WorkFactor = n
			}
			id, err := daemon.Init(g.homeDir(), o)
			if err != nil {
				return err
			}
			out := map[string]string{"fingerprint": id.Fingerprint(), "home": g.home}
			return g.print(out, func() {
				fmt.Printf("Created a Ceiba home in %s\nYour key's fingerprint: %s\n", g.home, id.Fingerprint())
				fmt.Printf("\nWhen this node joins a network it writes %s:\n"+
					"a certificate that revokes this key if the device is lost or seized. It is encrypted\n"+
					"with your passphrase, but a copy on the device is lost with the device: copy it to a\n"+
					"USB stick or paper backup kept somewhere else, and delete nothing you have not copied.\n"+
					"Submit it from any node with: ceiba revoke --cert FILE (it asks for the passphrase).\n\n"+
					"Next: ceiba daemon\n", g.homeDir().RevocationPath())
			})
		},
	}
	cmd.Flags().StringVar(&o.Profile, "profile", "laptop", "where this node runs: laptop, vps or lowdata")
	cmd.Flags().StringVar(&o.Name, "name", "", "your organization's name, as others will see it")
	cmd.Flags().IntVar(&o.APIPort, "api-port", 7447, "port of the local API and web UI on 127.0.0.1")
	cmd.Flags().IntVar(&o.P2PPort, "p2p-port", 4747, "port for peer-to-peer connections (0 picks a free one)")
	cmd.Flags().BoolVar(&o.Local, "local", false, "listen on 127.0.0.1 only: for trying Ceiba on one machine")
	cmd.Flags().StringVar(&g.passphraseFile, "passphrase-file", "", "read the passphrase from this file")
	return cmd
}

func daemonCmd(g *globals) *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the node and the local API until stopped",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.passphrase(cmd.Context(), false)
			if err != nil {
				return err
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			o := daemon.Options{Home: g.homeDir(), Passphrase: p, Logger: log}
			if wf := os.Getenv("CEIBA_KDF_WORK_FACTOR"); wf != "" {
				o.WorkFactor, _ = strconv.Atoi(wf)
			}
			if si := os.Getenv("CEIBA_SYNC_INTERVAL"); si != "" {
				o.SyncInterval, _ = time.ParseDuration(si)
			}
			restoreGC := daemon.CollectLessDuringStart()
			d, err := daemon.Start(cmd.Context(), o)
			restoreGC()
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "ceiba daemon running; local API and web UI on http://%s\n", d.APIAddr())
			mctx, stop := context.WithCancel(cmd.Context())
			defer stop()
			go daemon.ManageMemory(mctx, log)
			return d.Wait(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&g.passphraseFile, "passphrase-file", "", "read the passphrase from this file")
	cmd.Flags().BoolVar(&verbose, "verbose", false, "log debug detail")
	return cmd
}

// readInput reads a file the CLI sends to the daemon. One larger than the
// daemon takes (daemon.MaxBody) is refused before it is read: a disk image
// picked by mistake would otherwise be read whole into memory, and under
// a memory limit the CLI would die with a stack trace.
func readInput(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > daemon.MaxBody {
		return nil, fmt.Errorf("%s is %d MiB, more than the node takes (%d MiB): is it the right file?", path, fi.Size()>>20, daemon.MaxBody>>20)
	}
	// A pipe or a device has no size to stat.
	b, err := io.ReadAll(io.LimitReader(f, daemon.MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > daemon.MaxBody {
		return nil, fmt.Errorf("%s is more than the node takes (%d MiB): is it the right file?", path, daemon.MaxBody>>20)
	}
	return b, nil
}

func readKeyDoc(path string) (api.PublicKeyDoc, error) {
	var doc api.PublicKeyDoc
	b, err := readInput(path)
	if err != nil {
		return doc, err
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Key == "" {
		return doc, fmt.Errorf("%s is not a public key file (make one with \"ceiba key export\")", path)
	}
	return doc, nil
}

func networkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "Create a network"}
	var name, draftOut, draftIn string
	var stewards []string
	var threshold int
	create := &cobra.Command{
		Use:   "create --name NAME [--steward KEYFILE ...] [--threshold K]",
		Short: "Create a new network with this node as a steward",
		Long: "Creates a network. Alone, this node is its only steward. With --steward KEYFILE\n" +
			"(files from \"ceiba key export\" on each co-steward's device) it writes a charter draft\n" +
			"that each co-steward signs with \"ceiba steward approve --draft FILE\"; then run\n" +
			"\"ceiba network create --draft FILE\" here to start the network. It prints a join code\n" +
			"for each co-steward (\"ceiba invite accept CODE\").",
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := api.NetworkRequest{Name: name, Threshold: threshold}
			if draftIn != "" {
				b, err := readInput(draftIn)
				if err != nil {
					return err
				}
				req.Draft = b
			}
			for _, s := range stewards {
				doc, err := readKeyDoc(s)
				if err != nil {
					return err
				}
				req.Stewards = append(req.Stewards, doc)
			}
			var res api.NetworkResult
			if err := g.call(cmd.Context(), http.MethodPost, "/v1/network", req, &res); err != nil {
				return err
			}
			if len(res.Missing) > 0 {
				if draftOut == "" {
					draftOut = "charter-draft.ceiba"
				}
				if err := os.WriteFile(draftOut, res.Draft, 0o600); err != nil {
					return err
				}
			}
			return g.print(res, func() {
				if len(res.Missing) > 0 {
					fmt.Printf("Charter draft written to %s. Still to sign it (\"ceiba steward approve --draft %s\"):\n", draftOut, draftOut)
					for _, m := range res.Missing {
						fmt.Println("  " + m)
					}
					fmt.Printf("Then: ceiba network create --draft %s\n", draftOut)
					return
				}
				fmt.Printf("Network created: %s\n", res.Network)
				for fp, code := range res.JoinCodes {
					fmt.Printf("Join code for steward %s:\n  %s\n", fp, code)
				}
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "the network's name (only members ever see it)")
	create.Flags().StringArrayVar(&stewards, "steward", nil, "a co-steward's public key file (repeat)")
	create.Flags().IntVar(&threshold, "threshold", 0, "approvals needed for admissions, revocations and amendments (default: a majority)")
	create.Flags().StringVar(&draftOut, "draft-out", "", "where to write the charter draft (default charter-draft.ceiba)")
	create.Flags().StringVar(&draftIn, "draft", "", "a charter draft every steward has signed: start the network from it")
	cmd.AddCommand(create)
	return cmd
}

func inviteCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "invite", Short: "Invite an organization or a reader, or accept an invite"}
	var role string
	var expires time.Duration
	var qr bool
	create := &cobra.Command{
		Use:   "create --role member|reader",
		Short: "Create a single-use, expiring invite code",
		Long: "A member organization invites readers (activists it vouches for). A steward invites\n" +
			"organizations; their admission then needs the other stewards' approval.\n" +
			"The code is a secret: pass it on by a safe channel.",
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var inv api.Invite
			if err := g.call(cmd.Context(), http.MethodPost, "/v1/invites", api.InviteRequest{Role: role, Expires: expires}, &inv); err != nil {
				return err
			}
			return g.print(inv, func() {
				fmt.Printf("Invite for a %s, valid until %s, usable once:\n\n%s\n", inv.Role, inv.Expires.Local().Format(time.RFC1123), inv.Code)
				if qr {
					q, err := qrcode.New(inv.Code, qrcode.Low)
					if err == nil {
						fmt.Println()
						fmt.Print(q.ToSmallString(false))
					}
				}
			})
		},
	}
	create.Flags().StringVar(&role, "role", "", "member or reader")
	create.Flags().DurationVar(&expires, "expires", 72*time.Hour, "how long the invite stays valid")
	create.Flags().BoolVar(&qr, "qr", false, "also print the code as a QR code")
	var name string
	accept := &cobra.Command{
		Use:   "accept CODE",
		Short: "Join a network with an invite code",
		Args:  args(1, "the invite code"),
		RunE: func(cmd *cobra.Command, a []string) error {
			var st api.Status
			if err := g.call(cmd.Context(), http.MethodPost, "/v1/invites/accept", api.AcceptRequest{Code: a[0], Name: name}, &st); err != nil {
				return err
			}
			return g.print(st, func() {
				fmt.Printf("Joined network %q as %s; %d peers, %d entries so far.\n", st.NetworkName, st.Role, st.Peers, st.Counts.Entries)
			})
		},
	}
	accept.Flags().StringVar(&name, "name", "", "your organization's name (member invites)")
	cmd.AddCommand(create, accept)
	return cmd
}

const entryTemplate = `# A Ceiba directory entry. Publish it with: ceiba entry publish FILE
# Lines starting with # are comments. Fields follow Open Referral HSDS.

# A short id of your choosing: lowercase letters, digits and dashes.
# Publishing again with the same id replaces the entry.
id: asesoria-juridica
# Days until the entry expires unless you publish it again (1 to 180). A new
# version never expires before the one it replaces; to take an entry down
# sooner, delete it with: ceiba entry rm ID
expires_in_days: 90
service:
  name: Asesoría jurídica para personas defensoras
  description: >-
    Acompañamiento legal en solicitudes de asilo y medidas de protección.
  # active (if left out), inactive or temporarily-closed
  status: active
  # legal, shelter, health, psychosocial, digital-security, migration, work,
  # education, food, financial, protection, documentation, accompaniment
  categories: [legal, migration]
  # ISO 639 codes
  languages: [es, en]
  areas:
    - city: Ciudad de México
      country: MX
  schedules: ["lunes a viernes 9:00-17:00"]
  eligibility: Personas defensoras de derechos humanos en el exilio.
  application_process: Escribir por Signal; respondemos en 48 horas.
  fees: Gratuito
  contacts:
    # signal, whatsapp, email, phone, onion, matrix or web
    - kind: signal
      value: "+52 55 0000 0000"
      preferred: true
      languages: [es]
    - kind: email
      value: contacto@example.org
  intake:
    first_contact: Mensaje breve sin datos sensibles.
    response_time: 48 horas
    vetting_required: true
    always_open: false
  last_verified: "2026-11-01"
`

// parseEntryFile reads a YAML or JSON entry file strictly: an unknown or
// misspelt field is an error that names it.
func parseEntryFile(path string) (api.PublishRequest, error) {
	var req api.PublishRequest
	b, err := readInput(path)
	if err != nil {
		return req, err
	}
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		return req, fmt.Errorf("%s is not valid YAML or JSON: %v", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("%s: %v (see \"ceiba entry template\")", path, err)
	}
	if req.Service == nil {
		return req, fmt.Errorf("%s has no service: section (see \"ceiba entry template\")", path)
	}
	// An entry that says nothing of its status is open: asking every
	// organization to write "status: active" only makes files fail.
	if req.Service.Status == "" {
		req.Service.Status = "active"
	}
	if err := directory.CheckService(req.Service); err != nil {
		return req, fmt.Errorf("%s: %v", path, err)
	}
	return req, nil
}

func entryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "entry", Short: "Publish and manage your organization's entries"}
	var id string
	publish := &cobra.Command{
		Use:   "publish FILE",
		Short: "Sign and publish an entry from a YAML or JSON file",
		Args:  args(1, "an entry file (\"ceiba entry template > entry.yaml\" makes one)"),
		RunE: func(cmd *cobra.Command, a []string) error {
			req, err := parseEntryFile(a[0])
			if err != nil {
				return err
			}
			if id != "" {
				req.ID = id
			}
			var e api.Entry
			if err := g.call(cmd.Context(), http.MethodPost, "/v1/entries", req, &e); err != nil {
				return err
			}
			return g.print(e, func() {
				fmt.Printf("Published %q (version %d), valid until %s.\n", e.ID, e.Seq, e.Expires.Format(time.DateOnly))
			})
		},
	}
	publish.Flags().StringVar(&id, "id", "", "entry id (overrides the file's)")
	template := &cobra.Command{
		Use: "template", Short: "Print a commented entry file to start from", Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error { fmt.Print(entryTemplate); return nil },
	}
	rm := &cobra.Command{
		Use: "rm ID", Short: "Delete one of your entries everywhere", Args: args(1, "the entry id"),
		RunE: func(cmd *cobra.Command, a []string) error {
			var e api.Entry
			if err := g.call(cmd.Context(), http.MethodDelete, "/v1/entries/"+url.PathEscape(a[0]), nil, &e); err != nil {
				return err
			}
			return g.print(e, func() { fmt.Printf("Deleted %q.\n", a[0]) })
		},
	}
	ls := &cobra.Command{
		Use: "ls", Short: "List your organization's entries", Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var es []api.Entry
			if err := g.call(cmd.Context(), http.MethodGet, "/v1/entries", nil, &es); err != nil {
				return err
			}
			return g.print(es, func() {
				for _, e := range es {
					state := "live"
					switch {
					case e.Deleted:
						state = "deleted"
					case e.Expired:
						state = "expired"
					case !e.Verified:
						state = "not visible"
					}
					name := ""
					if e.Service != nil {
						name = e.Service.Name
					}
					fmt.Printf("%-24s v%-3d %-11s %s\n", e.ID, e.Seq, state, name)
				}
			})
		},
	}
	cmd.AddCommand(publish, template, rm, ls)
	return cmd
}

func searchCmd(g *globals) *cobra.Command {
	var q directory.Query
	cmd := &cobra.Command{
		Use:   "search [QUERY]",
		Short: "Search the directory (works offline, from this node's copy)",
		Long:  "Finds services by words (accents and case do not matter), need, language and place.",
		RunE: func(cmd *cobra.Command, a []string) error {
			q.Text = strings.Join(a, " ")
			v := url.Values{"q": {q.Text}, "category": {q.Category}, "language": {q.Language}, "area": {q.Area}}
			var res []api.Entry
			if err := g.call(cmd.Context(), http.MethodGet, "/v1/search?"+v.Encode(), nil, &res); err != nil {
				return err
			}
			return g.print(res, func() {
				if len(res) == 0 {
					fmt.Println("No services found.")
					return
				}
				for _, e := range res {
					printEntryLine(e)
				}
			})
		},
	}
	cmd.Flags().StringVar(&q.Category, "category", "", "need: "+strings.Join(directory.Categories, ", "))
	cmd.Flags().StringVar(&q.Language, "language", "", "ISO 639 language code, e.g. es")
	cmd.Flags().StringVar(&q.Area, "area", "", "city, country code or place")
	return cmd
}

func printEntryLine(e api.Entry) {
	if e.Service == nil {
		return
	}
	var places []string
	for _, a := range e.Service.Areas {
		places = append(places, strings.Trim(strings.Join([]string{a.City, a.Country, a.Text}, " "), " "))
	}
	mark := ""
	if e.Service.Status != "active" {
		mark = " [" + e.Service.Status + "]"
	}
	fmt.Printf("%s%s\n  %s · %s · %s · by %s\n  ceiba show %s\n", e.Service.Name, mark, strings.Join(e.Service.Categories, ", "),
		strings.Join(e.Service.Languages, ", "), strings.Join(places, "; "), e.Org, e.ID)
}

func showCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one entry: contacts, who signed it, whether it is verified, stale or revoked",
		Args:  args(1, "an entry id or key"),
		RunE: func(cmd *cobra.Command, a []string) error {
			var e api.Entry
			if err := g.call(cmd.Context(), http.MethodGet, "/v1/entry?ref="+url.QueryEscape(a[0]), nil, &e); err != nil {
				return err
			}
			return g.print(e, func() { printEntry(e) })
		},
	}
}

func printEntry(e api.Entry) {
	if e.Service == nil {
		fmt.Printf("%s was deleted by its publisher.\n", e.ID)
		return
	}
	s := e.Service
	fmt.Printf("%s (%s)\n", s.Name, s.Status)
	if s.Alert != "" {
		fmt.Printf("! %s\n", s.Alert)
	}
	if s.Description != "" {
		fmt.Println(s.Description)
	}
	fmt.Printf("Needs: %s\nLanguages: %s\n", strings.Join(s.Categories, ", "), strings.Join(s.Languages, ", "))
	for _, a := range s.Areas {
		fmt.Printf("Where: %s\n", strings.Trim(strings.Join([]string{a.City, a.Country, a.Text}, " "), " "))
	}
	for _, c := range s.Contacts {
		pref := ""
		if c.Preferred {
			pref = " (preferred)"
		}
		fmt.Printf("Contact %s: %s%s\n", c.Kind, c.Value, pref)
	}
	fmt.Printf("Published by %s (%s), version %d, signed %s\n", e.Org, e.Publisher, e.Seq, e.Issued.Format(time.DateOnly))
	switch {
	case e.Revoked:
		fmt.Println("WARNING: the publisher's key has been revoked. Do not trust this entry.")
	case !e.Verified:
		fmt.Println("WARNING: the publisher is not (or no longer) an admitted organization.")
	default:
		fmt.Println("Verified: signed by an admitted organization whose key is not revoked.")
	}
	if e.Stale {
		fmt.Println("WARNING: this copy has not heard from the network for a while; it may be out of date.")
	}
	if e.Expired {
		fmt.Println("WARNING: this entry has expired.")
	}
}

func stewardCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "steward", Short: "Stewards: propose and approve admissions, revocations and charter changes"}
	var keyfile, name, reason, draft string
	var threshold int
	var maxEntries, maxUpdates uint32
	var maxBytes uint64
	var add, remove []string
	propose := &cobra.Command{
		Use:   "propose admit|revoke|charter [KEY]",
		Short: "Propose an admission, a revocation or a charter change",
		Long: "  ceiba steward propose admit --keyfile org.pub --name \"Organization\"\n" +
			"  ceiba steward propose revoke FINGERPRINT [--reason TEXT]\n" +
			"  ceiba steward propose charter [--threshold K] [--add KEYFILE] [--remove FINGERPRINT]\n" +
			"        [--max-author-entries N] [--max-author-bytes N] [--max-author-updates-per-hour N]\n" +
			"Other stewards see the proposal with \"ceiba steward proposals\" and approve it.",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, a []string) error {
			req := api.ProposeRequest{Kind: a[0], Reason: reason, Threshold: threshold, Remove: remove,
				MaxAuthorEntries: maxEntries, MaxAuthorBytes: maxBytes, MaxAuthorUpdatesPerHour: maxUpdates}
			switch a[0] {
			case "admit":
				if keyfile == "" {
					return errors.New("propose admit needs --keyfile (the organization's \"ceiba key export\" file)")
				}
				doc, err := readKeyDoc(keyfile)
				if err != nil {
					return err
				}
				if name != "" {
					doc.Name = name
				}
				req.Member = &doc
			case "revoke":
				if len(a) != 2 {
					return errors.New("propose revoke needs the key's fingerprint")
				}
				req.Key = a[1]
			case "charter":
				for _, f := range add {
					doc, err := readKeyDoc(f)
					if err != nil {
						return err
					}
					req.Add = append(req.Add, doc)
				}
			default:
				return fmt.Errorf("unknown proposal %q: use admit, revoke or charter", a[0])
			}
			var p api.Proposal
			if err := g.call(cmd.Context(), http.MethodPost, "/v1/proposals", req, &p); err != nil {
				return err
			}
			return g.print(p, func() { printProposal(p) })
		},
	}
	propose.Flags().StringVar(&keyfile, "keyfile", "", "the organization's public key file")
	propose.Flags().StringVar(&name, "name", "", "the organization's name")
	propose.Flags().StringVar(&reason, "reason", "", "why (shown to the other stewards)")
	propose.Flags().IntVar(&threshold, "threshold", 0, "new threshold")
	propose.Flags().StringArrayVar(&add, "add", nil, "a steward to add (public key file)")
	propose.Flags().StringArrayVar(&remove, "remove", nil, "a steward to remove (fingerprint)")
	propose.Flags().Uint32Var(&maxEntries, "max-author-entries", 0, "charter: live entries one organization may have shown (0: unchanged; default 1024)")
	propose.Flags().Uint64Var(&maxBytes, "max-author-bytes", 0, "charter: bytes of live entries one organization may have shown (0: unchanged; default 32 MiB)")
	propose.Flags().Uint32Var(&maxUpdates, "max-author-updates-per-hour", 0, "charter: entry updates per organization per hour that nodes forward (0: unchanged; default 60)")
	list := &cobra.Command{
		Use: "proposals", Short: "List proposals, pending first", Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ps []api.Proposal
			if err := g.call(cmd.Context(), http.MethodGet, "/v1/proposals", nil, &ps); err != nil {
				return err
			}
			return g.print(ps, func() {
				for _, p := range ps {
					printProposal(p)
				}
			})
		},
	}
	approve := &cobra.Command{
		Use:   "approve ID | --draft FILE",
		Short: "Approve a pending proposal, or sign a new network's charter draft",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			if draft != "" {
				b, err := readInput(draft)
				if err != nil {
					return err
				}
				var res api.NetworkResult
				if err := g.call(cmd.Context(), http.MethodPost, "/v1/draft/sign", api.NetworkRequest{Draft: b}, &res); err != nil {
					return err
				}
				if err := os.WriteFile(draft, res.Draft, 0o600); err != nil {
					return err
				}
				return g.print(res, func() {
					fmt.Printf("Signed the draft in %s; %d signatures still missing.\n", draft, len(res.Missing))
				})
			}
			if len(a) != 1 {
				return errors.New("steward approve needs a proposal ID (see \"ceiba steward proposals\") or --draft FILE")
			}
			var p api.Proposal
			if err := g.call(cmd.Context(), http.MethodPost, "/v1/proposals/"+url.PathEscape(a[0])+"/approve", nil, &p); err != nil {
				return err
			}
			return g.print(p, func() {
				fmt.Printf("Approved %s proposal %s:\n  %s\n", p.Kind, p.ID, p.Summary)
				printProposal(p)
			})
		},
	}
	approve.Flags().StringVar(&draft, "draft", "", "a charter draft file to sign")
	cmd.AddCommand(propose, list, approve)
	return cmd
}

func printProposal(p api.Proposal) {
	state := fmt.Sprintf("pending, %d of %d approvals", len(p.Approvals), p.Threshold)
	if p.Effective {
		state = "in effect"
	}
	if len(p.Uncounted) > 0 {
		state = fmt.Sprintf("NOT in effect: the approvals of %s no longer count (revoked at an earlier charter version); %d of %d approvals count, more stewards must approve",
			strings.Join(p.Uncounted, ", "), len(p.Approvals)-len(p.Uncounted), p.Threshold)
	}
	fmt.Printf("%s  %s  (%s)\n", p.ID, p.Summary, state)
}

func revokeCmd(g *globals) *cobra.Command {
	var self bool
	var cert string
	cmd := &cobra.Command{
		Use:   "revoke --self | --cert FILE",
		Short: "Revoke your own key, or submit a revocation certificate for a lost key",
		Long: "--self revokes this node's key everywhere, for good. --cert FILE submits the\n" +
			"revocation.cert that was written when a (now lost) key joined the network; it is\n" +
			"encrypted with that key's passphrase, asked for as by \"ceiba daemon\" (prompt,\n" +
			"--passphrase-file or CEIBA_PASSPHRASE).\n" +
			"To revoke someone else's key, stewards use \"ceiba steward propose revoke\".",
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case self == (cert != ""):
				return errors.New("give exactly one of --self or --cert FILE")
			case self:
				if err := g.call(cmd.Context(), http.MethodPost, "/v1/revoke/self", nil, nil); err != nil {
					return err
				}
			default:
				b, err := readInput(cert)
				if err != nil {
					return err
				}
				if directory.PassphraseEncrypted(b) {
					p, err := g.passphrase(cmd.Context(), false)
					if err != nil {
						return err
					}
					if b, err = directory.DecryptWithPassphrase(b, p); err != nil {
						return fmt.Errorf("revocation certificate %s: %w", cert, err)
					}
				}
				if err := g.call(cmd.Context(), http.MethodPost, "/v1/revoke/certificate", b, nil); err != nil {
					return err
				}
			}
			return g.print(map[string]bool{"revoked": true}, func() { fmt.Println("Revocation published.") })
		},
	}
	cmd.Flags().BoolVar(&self, "self", false, "revoke this node's own key")
	cmd.Flags().StringVar(&cert, "cert", "", "a revocation certificate file")
	cmd.Flags().StringVar(&g.passphraseFile, "passphrase-file", "", "read the certificate's passphrase from this file")
	return cmd
}

func rotateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Stewards: start a new read-key epoch so revoked or seized devices read nothing new",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p api.Proposal
			if err := g.call(cmd.Context(), http.MethodPost, "/v1/rotate", nil, &p); err != nil {
				return err
			}
			return g.print(p, func() { printProposal(p) })
		},
	}
}

func statusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "status", Short: "Show the node's network, peers, freshness and counts", Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var s api.Status
			if err := g.call(cmd.Context(), http.MethodGet, "/v1/status", nil, &s); err != nil {
				return err
			}
			return g.print(s, func() {
				fmt.Printf("Key:      %s (%s)\n", s.Fingerprint, s.Role)
				if !s.Joined {
					fmt.Println("Network:  none yet (ceiba network create, or ceiba invite accept CODE)")
					return
				}
				fmt.Printf("Network:  %s (%s…)\nPeers:    %d\nEpoch:    %d (key held: %d)\n", s.NetworkName, s.Network[:12], s.Peers, s.Epoch, s.KeyEpoch)
				if r := s.Rotation; r != nil && !r.Complete() {
					fmt.Printf("Rotation: epoch %d in progress: %d of %d pages of key packages held here\n", r.Epoch, r.Held, r.Pages)
				} else if r != nil {
					fmt.Printf("Rotation: epoch %d complete: all %d pages of key packages held here\n", r.Epoch, r.Pages)
				}
				if r := s.StoreRepair; r != nil {
					fmt.Printf("WARNING:  the store was damaged (%s); rebuilt at start, %d records read back, peers sent the rest; check the disk; damaged copy kept at %s\n", r.Damage, r.Recovered, r.KeptAt)
				}
				for _, e := range s.KeyMismatches {
					fmt.Printf("WARNING:  epoch %d sealed this node a key other than the one it announced: its signers equivocated; tell the stewards\n", e)
				}
				if s.Reachability != "" {
					fmt.Printf("Reachable: %s: %s\n", s.Reachability, s.ReachabilityWhy)
					if s.ReachabilityFix != "" {
						fmt.Printf("  Fix:    %s\n", s.ReachabilityFix)
					}
					if s.OffersRelay {
						fmt.Println("  Relay:  offered to peers behind NAT (bounded: 2 min and 1 MiB per circuit)")
					}
				}
				if tr := s.Traffic; tr != nil {
					fmt.Printf("Traffic:  %s in, %s out since start (profile %s, DHT %s", byteSize(tr.BytesIn), byteSize(tr.BytesOut), tr.Profile, tr.DHT)
					if tr.RecvCap > 0 || tr.SendCap > 0 {
						fmt.Printf("; caps %s in, %s out", capSize(tr.RecvCap), capSize(tr.SendCap))
						if tr.ThrottledIn+tr.ThrottledOut >= 1 {
							fmt.Printf(", waited %.0f s in, %.0f s out", tr.ThrottledIn, tr.ThrottledOut)
						}
					}
					fmt.Println(")")
				}
				if ds := s.DHTStore; ds != nil {
					fmt.Printf("DHT store: %d records, %s on disk (%d from signers not yet admitted; %d puts refused); %d requests over budget unanswered; %d rendezvous records (%d refused)\n",
						ds.Records, byteSize(ds.Bytes), ds.Pending, ds.Refused, ds.Unserved, ds.Providers, ds.ProvidersRefused)
				}
				for _, h := range s.HeldBack {
					fmt.Printf("Held back: %d entry versions from %q (%s), over the charter's update rate; its newest version still arrives by sync\n", h.Held, h.Name, h.Author)
				}
				if !s.LastSync.IsZero() {
					fmt.Printf("Synced:   %s with %d peers\n", s.LastSync.Local().Format(time.DateTime), s.LastSyncPeers)
				}
				fresh := "never"
				if !s.FreshAsOf.IsZero() {
					fresh = s.FreshAsOf.Local().Format(time.DateTime)
				}
				fmt.Printf("Fresh as of: %s", fresh)
				if s.Stale && !s.HeartbeatStale {
					fmt.Print("  (STALE: no news from the network for too long)")
				}
				fmt.Print("\nStewards: ")
				switch {
				case s.LastHeartbeat.IsZero():
					fmt.Print("no signed heartbeat received yet")
				default:
					fmt.Printf("last heartbeat %s, valid until %s", s.LastHeartbeat.Local().Format(time.DateTime), s.HeartbeatExpires.Local().Format(time.DateTime))
				}
				if s.HeartbeatStale {
					fmt.Print("\nSTALE:    no valid steward heartbeat. Even if peers answer, they may be withholding news (revocations, changes), or the stewards' nodes are down: do not rely on this copy; connect to other peers or ask a steward")
				}
				if s.BehindStewards {
					fmt.Print("\nBEHIND:   the stewards reported ")
					switch {
					case s.BehindEpoch > 0:
						fmt.Printf("key epoch %d", s.BehindEpoch)
					case s.BehindCharter > 0:
						fmt.Printf("charter version %d", s.BehindCharter)
					default:
						fmt.Printf("newer entries of %d member(s)", s.BehindMembers)
					}
					fmt.Print(", which has not reached this node: its peers pass on the stewards' heartbeats but hold back what they report (revocations, key rotations, changed entries). Do not rely on this copy; connect to another organization's node or ask a steward")
				}
				fmt.Printf("\nEntries:  %d  Members: %d  Readers: %d  Revoked keys: %d  Pending proposals: %d\n",
					s.Counts.Entries, s.Counts.Members, s.Counts.Readers, s.Counts.Revoked, s.Counts.Pending)
			})
		},
	}
}

func peersCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "peers", Short: "List connected peers", Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ps []api.Peer
			if err := g.call(cmd.Context(), http.MethodGet, "/v1/peers", nil, &ps); err != nil {
				return err
			}
			return g.print(ps, func() {
				for _, p := range ps {
					fmt.Printf("%s %s\n", p.ID, strings.Join(p.Addrs, " "))
				}
			})
		},
	}
}

func keyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Share your public key"}
	var out string
	export := &cobra.Command{
		Use: "export", Short: "Write your public key file (for stewards admitting you)", Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var doc api.PublicKeyDoc
			if err := g.call(cmd.Context(), http.MethodGet, "/v1/key", nil, &doc); err != nil {
				return err
			}
			b, _ := json.MarshalIndent(doc, "", "  ")
			if out == "" {
				fmt.Println(string(b))
				return nil
			}
			if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "Public key of %s written to %s\n", doc.Fingerprint, out)
			return nil
		},
	}
	export.Flags().StringVar(&out, "out", "", "file to write (default: print)")
	cmd.AddCommand(export)
	return cmd
}

func exportCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "export FILE",
		Short: "Write the whole directory, signed and sealed, to a file (e.g. a USB stick)",
		Args:  args(1, "the file to write"),
		RunE: func(cmd *cobra.Command, a []string) error {
			var b []byte
			if err := g.call(cmd.Context(), http.MethodGet, "/v1/export", nil, &b); err != nil {
				return err
			}
			if err := directory.WriteFileAtomic(a[0], b, 0o600); err != nil {
				return err
			}
			return g.print(map[string]any{"file": a[0], "bytes": len(b)}, func() { fmt.Printf("Wrote %d bytes to %s.\n", len(b), a[0]) })
		},
	}
}

func importCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE",
		Short: "Apply a bundle written by \"ceiba export\"; every record is verified",
		Args:  args(1, "the bundle file"),
		RunE: func(cmd *cobra.Command, a []string) error {
			b, err := readInput(a[0])
			if err != nil {
				return err
			}
			var res daemon.ImportResult
			if err := g.call(cmd.Context(), http.MethodPost, "/v1/import", b, &res); err != nil {
				return err
			}
			if err := g.print(res, func() {
				fmt.Printf("Imported %d new records (%d already known, %d rejected).\n", res.Added, res.Known, res.Rejected)
				for _, r := range res.Reasons {
					fmt.Println("  rejected: " + r)
				}
			}); err != nil {
				return err
			}
			// A refused record may be a damaged or tampered bundle: a
			// script must not take the import for a full one.
			if res.Rejected > 0 {
				return fmt.Errorf("%d of the bundle's %d records were refused; the others were imported", res.Rejected, res.Added+res.Known+res.Rejected)
			}
			return nil
		},
	}
}

func wipeCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "wipe",
		Short: "Destroy this device's keys and directory copy, stopping the daemon",
		Long: "Overwrites and deletes the keystore, then deletes the whole Ceiba home. If the daemon\n" +
			"is running for this home, it does this itself and exits: one step, for when someone\n" +
			"is at the door. The web UI has the same action (My services → Wipe this device).",
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := g.homeDir()
			if _, err := os.Stat(h.KeysPath()); err != nil {
				return fmt.Errorf("no Ceiba keys in %s", h.Dir)
			}
			if !yes {
				fmt.Fprintf(os.Stderr, "This destroys the keys and data in %s for good. Type \"wipe\" to go on: ", h.Dir)
				var answer string
				fmt.Scanln(&answer)
				if answer != "wipe" {
					return errors.New("nothing wiped")
				}
			}
			c, err := g.client()
			if err != nil {
				c = nil
			}
			return wipeHome(cmd.Context(), h, c, os.Stderr)
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}

// wipeHome asks the daemon answering on c's address to wipe and stop, then
// wipes h itself whatever the daemon answered: the port may hold another
// home's daemon (wrong token) or something that never stops answering, and
// the panic button must not leave the keys on disk because of that. c is
// nil when the home's API settings could not be read.
func wipeHome(ctx context.Context, h daemon.Home, c *api.Client, w io.Writer) error {
	var ran bool
	var apiErr error
	if c == nil {
		apiErr = errors.New("this home's API settings could not be read, so no daemon was asked to stop")
	} else {
		ran, apiErr = daemonWipe(ctx, c)
	}
	if err := daemon.Wipe(h); err != nil {
		if apiErr != nil {
			return fmt.Errorf("%w (and %v)", err, apiErr)
		}
		return err
	}
	switch {
	case apiErr != nil:
		fmt.Fprintf(w, "Wiped: the keys and directory copy in %s are destroyed.\n", h.Dir)
		return fmt.Errorf("the files are wiped, but %v: if a Ceiba daemon is still running for this home, stop it", apiErr)
	case ran:
		fmt.Fprintf(w, "Wiped: the daemon is stopped, and the keys and directory copy in %s are destroyed.\n", h.Dir)
	default:
		fmt.Fprintf(w, "Wiped: no daemon was running, and the keys and directory copy in %s are destroyed.\n", h.Dir)
	}
	return nil
}

// daemonWipe asks the daemon on c's address to wipe and exit, and waits
// until it is gone. ran says whether a daemon answered at all.
func daemonWipe(ctx context.Context, c *api.Client) (ran bool, err error) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var s api.Status
	if c.Do(sctx, http.MethodGet, "/v1/status", nil, &s) != nil {
		return false, nil
	}
	// The daemon holds the store open: it wipes and exits.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Do(wctx, http.MethodPost, "/v1/wipe", nil, nil); err != nil {
		return true, fmt.Errorf("the process answering on %s did not wipe (%v)", c.Base, err)
	}
	return true, waitDaemonGone(ctx, c)
}

// daemonGoneTimeout bounds the wait for a daemon that wiped to exit.
var daemonGoneTimeout = 30 * time.Second

// waitDaemonGone waits until the daemon's API no longer answers: the
// process has exited.
func waitDaemonGone(ctx context.Context, c *api.Client) error {
	ctx, cancel := context.WithTimeout(ctx, daemonGoneTimeout)
	defer cancel()
	for {
		var s api.Status
		// A status request cut by the deadline is no sign of an exit.
		if c.Do(ctx, http.MethodGet, "/v1/status", nil, &s) != nil && ctx.Err() == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the daemon on %s said it wiped but still answers after %s", c.Base, daemonGoneTimeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// versionInfo is what "ceiba version --json" prints: enough to tell which
// source and which dependencies a binary was built from.
type versionInfo struct {
	Version  string          `json:"version"`
	Commit   string          `json:"commit,omitempty"`
	Go       string          `json:"go"`
	Protocol int             `json:"protocol"`
	Modules  []moduleVersion `json:"modules"`
}

type moduleVersion struct {
	Path    string `json:"path"`
	Version string `json:"version"`
	Sum     string `json:"sum,omitempty"`
}

func buildVersion() versionInfo {
	v := versionInfo{Version: version, Commit: commit, Go: runtime.Version(), Protocol: directory.FormatVersion, Modules: []moduleVersion{}}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && v.Commit == "" {
			v.Commit = s.Value
		}
	}
	for _, m := range bi.Deps {
		if m.Replace != nil {
			m = m.Replace
		}
		v.Modules = append(v.Modules, moduleVersion{Path: m.Path, Version: m.Version, Sum: m.Sum})
	}
	return v
}

func versionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use: "version", Short: "Print the version (--json: also the commit, Go version and module sums)", Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := buildVersion()
			if f := cmd.Flag("json"); f != nil && f.Changed {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			fmt.Printf("ceiba %s (protocol v%d, %s)\n", v.Version, v.Protocol, v.Go)
			return nil
		},
	}
	return cmd
}

func demoCmd() *cobra.Command {
	var nodes int
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a local network of separate node processes and narrate publish, search, revoke, rotate",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			_, err = demo.Run(cmd.Context(), demo.Options{Binary: exe, Readers: nodes, Keep: keep, Out: os.Stdout})
			return err
		},
	}
	cmd.Flags().IntVar(&nodes, "readers", 2, "how many reader nodes to start besides the stewards and organizations")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the demo's homes (printed) instead of deleting them")
	return cmd
}

// byteSize writes n bytes the way a person reads a data plan.
func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func capSize(n int64) string {
	if n <= 0 {
		return "unlimited"
	}
	return byteSize(n) + "/s"
}
