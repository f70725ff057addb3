// Package consoletest runs the web console in a real, headless Chromium for
// tests (chromedp), and keeps screenshots of what it showed.
package consoletest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// T is what the helpers need of a test: *testing.T and Ginkgo's GinkgoT() both have it.
type T interface {
	Helper()
	Skip(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
}

// browserNames are the names Chromium has on PATH, Debian's first.
var browserNames = []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"}

// InstallHint says how to get the browser the tests need.
const InstallHint = "the web console's browser tests need Chromium: `apt-get install chromium` " +
	"(Debian and Ubuntu; .ci/run installs it when it runs as root), or put a chromium on PATH"

// Chromium is the path of a Chromium on PATH, or "" when there is none.
func Chromium() string {
	for _, n := range browserNames {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// Browser is one headless Chromium tab.
type Browser struct {
	// Ctx runs chromedp actions in the tab.
	Ctx context.Context
	// console collects the page's console errors and uncaught exceptions.
	console chan string
}

// NewBrowser starts a headless Chromium with a laptop-sized window and opens
// a tab, or skips the test when there is no Chromium. Both end with the test.
func NewBrowser(t T) *Browser {
	t.Helper()
	bin := Chromium()
	if bin == "" {
		t.Skip(InstallHint)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.WindowSize(1366, 900),
		// CI runs as root, where Chromium's sandbox cannot start; the
		// pages it loads are the test's own.
		chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &Browser{console: make(chan string, 100)}
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithListener(b.listen))
	b.Ctx = ctx
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start Chromium (%s): %v", bin, err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return b
}

// listen keeps the page's uncaught exceptions and console.error calls.
func (b *Browser) listen(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		b.report(fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			args := make([]string, 0, len(ev.Args))
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			b.report("console.error: " + strings.Join(args, " "))
		}
	}
}

func (b *Browser) report(s string) {
	select {
	case b.console <- s:
	default:
	}
}

// Errors returns the console errors and exceptions the page reported so far.
func (b *Browser) Errors() []string {
	var out []string
	for {
		select {
		case s := <-b.console:
			out = append(out, s)
		default:
			return out
		}
	}
}

// Do runs actions, in order, with a timeout.
func (b *Browser) Do(timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.Ctx, timeout)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// Run runs actions within 15 s, and ends the test, with the page's errors,
// if they fail.
func (b *Browser) Run(t testing.TB, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := b.Do(15*time.Second, actions...); err != nil {
		t.Fatalf("%v (page errors: %v)", err, b.Errors())
	}
}

// Text is the text content of the first element the CSS selector sel matches.
func (b *Browser) Text(sel string) (string, error) {
	ctx, cancel := context.WithTimeout(b.Ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
}

// ScreenshotDir is where screenshots go: bin/console-screenshots at the
// repository's root (bin/ is not committed).
func ScreenshotDir(repoRoot string) string {
	return filepath.Join(repoRoot, "bin", "console-screenshots")
}

// Screenshot saves the whole page as dir/name.png.
func (b *Browser) Screenshot(dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(b.Ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return "", fmt.Errorf("screenshot %s: %w", name, err)
	}
	path := filepath.Join(dir, name+".png")
	return path, os.WriteFile(path, png, 0o644)
}
