//go:build amd64 && !darwin

package vlm

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCPUCheck runs this test binary on simulated CPUs (QEMU's user-mode
// emulator, which answers CPUID for the CPU model it is given): on one
// without AVX2, FMA and F16C (Westmere, 2010) it must stop at start with the
// message of cpucheck.c, not with SIGILL in a kernel; on Haswell (2013, the
// first x86-64-v3 CPU) it must start and run a test that lists ggml's devices.
func TestCPUCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: runs this binary under an emulator")
	}
	qemu, err := exec.LookPath("qemu-x86_64")
	if err != nil {
		t.Skip("qemu-x86_64 is not installed (Debian: apt-get install qemu-user; ./build.sh test installs it when run as root): the check for a CPU without x86-64-v3 is not simulated")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	run := func(cpu string) (string, error) {
		cmd := exec.Command(qemu, "-cpu", cpu, exe, "-test.run=^TestDevicesIncludeTheCPU$", "-test.count=1", "-test.v")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run("Westmere")
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "a CPU without AVX2 ran the program:\n%s", out)
	require.Equal(t, 1, exit.ExitCode(), "exit status (not a signal): %s", out)
	// Only the message: nothing of Go's runtime or ggml ran before it.
	require.True(t, strings.HasPrefix(out, "vlm: this CPU lacks avx, avx2, fma, f16c, bmi2, which"), "%s", out)
	for _, want := range []string{"x86-64-v3", "illegal instruction", "VLM_MARCH=native ./build.sh", "go run github.com/vlm-go/vlm/cmd/vlm-env", "VLM_PORTABLE", `"CPU target" in vlm's README`} {
		require.Contains(t, out, want)
	}
	require.NotContains(t, out, "PASS")

	out, err = run("Haswell")
	require.NoError(t, err, "an x86-64-v3 CPU must run the program:\n%s", out)
	require.Contains(t, out, "--- PASS: TestDevicesIncludeTheCPU")
	require.NotContains(t, out, "vlm: this CPU lacks")
}
