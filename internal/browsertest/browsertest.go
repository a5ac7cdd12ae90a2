// Package browsertest holds what the tests that drive a headless Chromium
// share: where Debian's package puts it and the flags it runs with. It is
// for tests only.
package browsertest

import "github.com/chromedp/chromedp"

// Chromium is Debian's package; CI installs it (see .ci/run).
const Chromium = "/usr/bin/chromium"

// Options start Chromium headless with the profile directory profile, and
// without the background traffic (updates, sync) that a test must not
// see. Callers add their own: the web UI's tests turn QUIC off, the web
// app's need it for WebTransport.
func Options(profile string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Chromium),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(profile),
	}
}
