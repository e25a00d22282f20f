// Package console drives the gateway's console in a real browser: `switchboard
// dev`, Debian's Chromium through chromedp, orders and a playback session
// placed through the public API, and the page watched as they show. It needs
// Chromium (apt-get install chromium), so its test builds only with the tag
// "console", outside make test: run it with make console-test. Screenshots go
// to docs/img/.
package console
