package vlm

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInitIsIdempotentAndConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); Init() }()
	}
	wg.Wait()
	Init()
	require.NotEmpty(t, SystemInfo())
}

func TestSystemInfoNamesTheCPUBackend(t *testing.T) {
	info := SystemInfo()
	assert.Contains(t, info, "CPU")
}

func TestDevicesIncludeTheCPU(t *testing.T) {
	devs := Devices()
	require.NotEmpty(t, devs)
	var cpu *Device
	for i := range devs {
		assert.Equal(t, i, devs[i].Index)
		assert.NotEmpty(t, devs[i].Name)
		if devs[i].Type == DeviceCPU {
			cpu = &devs[i]
		}
	}
	require.NotNil(t, cpu, "no CPU device in %v", devs)
	assert.Greater(t, cpu.TotalMemory, uint64(0))
	assert.LessOrEqual(t, cpu.FreeMemory, cpu.TotalMemory)
	assert.Contains(t, cpu.String(), "free of")
}

func TestDeviceTypeString(t *testing.T) {
	for typ, want := range map[DeviceType]string{
		DeviceCPU: "CPU", DeviceGPU: "GPU", DeviceIntegrated: "iGPU", DeviceAccelerator: "accelerator", DeviceType(99): "DeviceType(99)",
	} {
		assert.Equal(t, want, typ.String())
	}
}

// TestPinnedLlamaCppCommit fails when the pinned module changes under the
// binding: the commit the module's sync Makefile names must be ours.
func TestPinnedLlamaCppCommit(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}} {{.Dir}}", "github.com/ollama/ollama").Output()
	require.NoError(t, err)
	version, dir, ok := strings.Cut(strings.TrimSpace(string(out)), " ")
	require.True(t, ok)
	assert.Equal(t, OllamaModuleVersion, version, "go.mod pins another ollama version: update OllamaModuleVersion and LlamaCppCommit")
	mk, err := os.ReadFile(filepath.Join(dir, "Makefile.sync"))
	require.NoError(t, err)
	assert.Contains(t, string(mk), "FETCH_HEAD="+LlamaCppCommit+"\n")
}

func TestLogDefaultLevelIsWarn(t *testing.T) {
	assert.Equal(t, slog.LevelWarn, LogLevel())
}
