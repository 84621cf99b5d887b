package vlm

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// readmeBlock returns the fenced code block that follows the HTML comment
// marker in README.md.
func readmeBlock(t *testing.T, readme, marker string) string {
	t.Helper()
	_, after, ok := strings.Cut(readme, "<!-- "+marker+" -->")
	require.True(t, ok, "README.md lost its %q marker", marker)
	sc := bufio.NewScanner(strings.NewReader(after))
	var lines []string
	in := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if in {
				return strings.Join(lines, "\n") + "\n"
			}
			in = true
			continue
		}
		if in {
			lines = append(lines, line)
		}
	}
	t.Fatalf("README.md: no complete code block after %q", marker)
	return ""
}

// TestConsumerModule creates a throwaway module that requires vlm (replaced
// by this checkout, since the test must not depend on a published version),
// follows only the README's consumer steps, and runs the result.
func TestConsumerModule(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds a separate module and links llama.cpp into it")
	}
	root, err := os.Getwd()
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	steps := readmeBlock(t, string(readme), "consumer-steps")
	mainGo := readmeBlock(t, string(readme), "consumer-main")

	// The README says `go get github.com/vlm-go/vlm@latest`; here the module
	// comes from this checkout instead.
	const getLine = "go get github.com/vlm-go/vlm@latest"
	require.Contains(t, steps, getLine, "README consumer steps no longer start with go get")
	steps = strings.Replace(steps, getLine,
		"go mod edit -require=github.com/vlm-go/vlm@v0.0.0 -replace=github.com/vlm-go/vlm="+root+" && go mod tidy", 1)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/vlmconsumer\n\ngo 1.26.0\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(mainGo), 0o644))

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", steps)
	cmd.Dir = dir
	// Start from an environment without vlm's flags: the README's steps must set them.
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CGO_CPPFLAGS=") || strings.HasPrefix(kv, "CGO_CFLAGS=") ||
			strings.HasPrefix(kv, "CGO_CXXFLAGS=") || strings.HasPrefix(kv, "GOFLAGS=") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	require.NoError(t, err, "README consumer steps failed:\n%s", out.String())
	require.Contains(t, out.String(), "llama.cpp "+LlamaCppCommit)
	require.Regexp(t, `(?m)^CPU \(CPU, .*\): .* free of `, out.String())
}
