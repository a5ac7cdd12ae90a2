package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"aead.dev/minisign"
	"github.com/spf13/cobra"

	"github.com/ceiba-network/ceiba/release"
)

func releaseCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "release", Short: "Check a downloaded Ceiba release"}
	var keyFile string
	verify := &cobra.Command{
		Use:   "verify SHA256SUMS [FILE...]",
		Short: "Check SHA256SUMS's signature (SHA256SUMS.minisig) under the release key, then each FILE (default: every listed file present beside it)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			key := release.ProjectKey()
			if keyFile != "" {
				b, err := os.ReadFile(keyFile)
				if err != nil {
					return err
				}
				if key, err = release.ParseKey(b); err != nil {
					return fmt.Errorf("%s: %w", keyFile, err)
				}
			}
			return verifyRelease(key, argv[0], argv[1:])
		},
	}
	verify.Flags().StringVar(&keyFile, "key", "", "minisign public key file to check against instead of the release key built into this binary")
	cmd.AddCommand(verify)
	return cmd
}

func verifyRelease(key minisign.PublicKey, sumsPath string, files []string) error {
	sums, err := readSmall(sumsPath)
	if err != nil {
		return err
	}
	sig, err := readSmall(sumsPath + ".minisig")
	if err != nil {
		return fmt.Errorf("no signature beside the checksum file: %w", err)
	}
	s, err := release.VerifySums(key, sums, sig)
	if err != nil {
		return fmt.Errorf("%s: %w", sumsPath, err)
	}
	fmt.Printf("%s: signature good (%s)\n", filepath.Base(sumsPath), s.TrustedComment)
	if len(files) == 0 {
		dir := filepath.Dir(sumsPath)
		for _, name := range s.Order {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				files = append(files, filepath.Join(dir, name))
			}
		}
		if len(files) == 0 {
			return errors.New("none of the listed files is beside the checksum file: name the file you downloaded")
		}
	}
	failed := 0
	for _, f := range files {
		if err := s.CheckFile(f); err != nil {
			fmt.Println("FAILED: " + err.Error())
			failed++
			continue
		}
		fmt.Printf("%s: OK\n", filepath.Base(f))
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d files failed the check", failed, len(files))
	}
	return nil
}

// readSmall reads a checksum or signature file, refusing one far larger
// than any release's rather than loading a wrongly named download whole.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err == nil && len(b) > 1<<20 {
		err = fmt.Errorf("%s is over 1 MiB: not a release's checksum or signature file", path)
	}
	return b, err
}
