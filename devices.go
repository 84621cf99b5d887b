package vlm

/*
#include "binding.h"
*/
import "C"

import "fmt"

// DeviceType says what kind of compute device a backend device is.
type DeviceType int

// Device types, as ggml reports them.
const (
	DeviceCPU         DeviceType = C.GGML_BACKEND_DEVICE_TYPE_CPU   // the host CPU
	DeviceGPU         DeviceType = C.GGML_BACKEND_DEVICE_TYPE_GPU   // a discrete GPU with its own memory
	DeviceIntegrated  DeviceType = C.GGML_BACKEND_DEVICE_TYPE_IGPU  // a GPU sharing host memory
	DeviceAccelerator DeviceType = C.GGML_BACKEND_DEVICE_TYPE_ACCEL // an accelerator used alongside the CPU (e.g. BLAS)
)

// String returns "CPU", "GPU", "iGPU" or "accelerator".
func (t DeviceType) String() string {
	switch t {
	case DeviceCPU:
		return "CPU"
	case DeviceGPU:
		return "GPU"
	case DeviceIntegrated:
		return "iGPU"
	case DeviceAccelerator:
		return "accelerator"
	}
	return fmt.Sprintf("DeviceType(%d)", int(t))
}

// Device describes one compute device that ggml can run on.
type Device struct {
	Index       int        // position in the device list
	Name        string     // ggml's name, e.g. "CPU" or "CUDA0"
	Description string     // e.g. the CPU model or the GPU's product name
	Type        DeviceType // CPU, GPU, ...
	FreeMemory  uint64     // bytes free now, as the backend reports it
	TotalMemory uint64     // bytes in all
}

// String returns a one-line summary such as "CUDA0 (GPU, NVIDIA H200): 139.0 GiB free of 139.7 GiB".
func (d Device) String() string {
	return fmt.Sprintf("%s (%s, %s): %s free of %s", d.Name, d.Type, d.Description,
		formatBytes(d.FreeMemory), formatBytes(d.TotalMemory))
}

// Devices lists the devices of every loaded backend: always the CPU, plus
// any GPU whose backend is compiled in or loaded.
func Devices() []Device {
	Init()
	n := int(C.ggml_backend_dev_count())
	out := make([]Device, 0, n)
	for i := 0; i < n; i++ {
		dev := C.ggml_backend_dev_get(C.size_t(i))
		if dev == nil {
			continue
		}
		var free, total C.size_t
		C.ggml_backend_dev_memory(dev, &free, &total)
		out = append(out, Device{
			Index:       i,
			Name:        C.GoString(C.ggml_backend_dev_name(dev)),
			Description: C.GoString(C.ggml_backend_dev_description(dev)),
			Type:        DeviceType(C.ggml_backend_dev_type(dev)),
			FreeMemory:  uint64(free),
			TotalMemory: uint64(total),
		})
	}
	return out
}

func formatBytes(n uint64) string {
	const gib = 1 << 30
	const mib = 1 << 20
	switch {
	case n >= gib:
		return fmt.Sprintf("%.1f GiB", float64(n)/gib)
	case n >= mib:
		return fmt.Sprintf("%.1f MiB", float64(n)/mib)
	}
	return fmt.Sprintf("%d B", n)
}
