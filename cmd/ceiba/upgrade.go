package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ceiba-network/ceiba/node/daemon"
)

func upgradeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Move a home written by protocol version 1 to version 2, keeping its identity and entries",
		Long: "Run with the daemon stopped. Reads the version-1 store read-only, keeps this home's\n" +
			"identity and its own live entries (and, for a steward, who was admitted and revoked),\n" +
			"moves the version-1 store to data/store.v1 and deletes nothing. Then accept the\n" +
			"version-2 network's invite: the daemon re-publishes the kept entries once admitted.\n" +
			"Running it again shows what is still waiting.",
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.passphrase(cmd.Context(), false)
			if err != nil {
				return err
			}
			wf := 0
			if s := os.Getenv("CEIBA_KDF_WORK_FACTOR"); s != "" {
				wf, _ = strconv.Atoi(s)
			}
			rep, err := daemon.Upgrade(g.homeDir(), p, wf, time.Now())
			if err != nil {
				return err
			}
			return g.print(rep, func() { printUpgrade(g.homeDir(), rep) })
		},
	}
	cmd.Flags().StringVar(&g.passphraseFile, "passphrase-file", "", "read the passphrase from this file")
	return cmd
}

func printUpgrade(h daemon.Home, rep *daemon.UpgradeReport) {
	c := rep.Carried
	if rep.AlreadyDone {
		fmt.Printf("This home was upgraded to protocol version 2 on %s; the version-1 store is in %s.\n", c.Upgraded.Format(time.DateOnly), h.StoreV1Dir())
	} else {
		fmt.Printf("Upgraded to protocol version 2. Your key is unchanged: %s.\n", rep.Fingerprint)
		fmt.Printf("The version-1 store is kept, unchanged, in %s; the version-1 keys in %s.\n", h.StoreV1Dir(), h.KeysV1Path())
		for _, s := range rep.Skipped {
			fmt.Printf("Not carried over (%s).\n", s)
		}
		if rep.Others > 0 {
			fmt.Printf("%d records of the version-1 network that are not yours to publish (its governance, other organizations' entries) stay in the kept store.\n", rep.Others)
		}
		if rep.Deleted+rep.Expired > 0 {
			fmt.Printf("Not carried over: %d entries you had deleted and %d that had expired.\n", rep.Deleted, rep.Expired)
		}
	}
	for _, e := range c.Entries {
		fmt.Printf("Kept, to publish again once admitted: %q (%s), version %d.\n", e.ID, e.Service.Name, e.Seq)
	}
	for _, id := range c.Republished {
		fmt.Printf("Published again under version 2: %q.\n", id)
	}
	if len(c.Members)+len(c.Readers)+len(c.Revoked) > 0 {
		fmt.Println("As a steward of the version-1 network, re-invite these (\"ceiba invite create\") and revoke these again (\"ceiba steward propose revoke\") in the version-2 network:")
		for _, k := range c.Members {
			fmt.Printf("  member  %s  %s\n", k.Fingerprint, k.Name)
		}
		for _, k := range c.Readers {
			fmt.Printf("  reader  %s  %s (vouched for by %s)\n", k.Fingerprint, k.Name, k.VouchedBy)
		}
		for _, k := range c.Revoked {
			fmt.Printf("  revoked %s  %s  key %s\n", k.Fingerprint, k.Name, k.Key)
		}
	}
	if len(c.Entries) > 0 || !rep.AlreadyDone {
		fmt.Println("Next: ask a steward of the version-2 network for an invite (a reader: the organization that vouched for you), run \"ceiba daemon\", then \"ceiba invite accept CODE\".")
	}
}
