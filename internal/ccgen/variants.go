package main

// CPU variants: ggml's hottest CPU kernels compiled a second time for a wider
// instruction set and chosen when the program starts, the way ggml's own
// GGML_CPU_ALL_VARIANTS build picks one of several CPU backend libraries.
//
// A module that requires vlm cannot pass -march=native (its build must run
// on other machines, and Go's build cache does not key on the CPU), so the
// baseline is x86-64-v3. On a CPU with AVX-512 that loses a quarter of the
// prefill speed (llamafile's sgemm and the quantized dot products have
// AVX-512 and VNNI paths). So the sources below are compiled twice: once in
// their own package for x86-64-v3, once in the avx512 packages. Both copies'
// functions are renamed by macros in their wrappers (f → f__vlm_v3 and
// f__vlm_avx512), and dispatch.c defines each f as a one-instruction
// trampoline (an indirect jump through a slot) whose slot a constructor
// points at the AVX-512 copy when the CPU and OS support it. The rest of
// ggml (graph planning, threads, buffers: not hot) stays x86-64-v3 and calls
// the trampolines.
//
// What must hold, and how it is kept:
//   - every function either copy defines is renamed: the names come from
//     compiling them (go run ./internal/ccgen -symbols writes symbols.txt);
//     a new function upstream is defined twice and the link fails, a removed
//     one leaves a trampoline without target and the link fails;
//   - the copies share no weak (inline, template) symbol, which the linker
//     would merge into one copy compiled for one of the two targets: -symbols
//     refuses to write the list while they do (typeRenames gives local C++
//     types their own names in the AVX-512 copy, which makes the template
//     instantiations over them distinct);
//   - data a copy defines (vec.cpp's GELU tables, filled by ggml-cpu.c) keeps
//     its name in the baseline copy, which everything uses, and is renamed in
//     the AVX-512 copy, where it is an unused duplicate (no copied source
//     reads the tables it defines).

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// cpuVariant is the second target.
var cpuVariant = struct {
	name     string   // suffix of the renamed functions and of the packages
	flags    string   // its target (flags cgo accepts in directives)
	features []string // __builtin_cpu_supports names the CPU must all have
}{
	name:     "avx512",
	flags:    "-march=x86-64-v4 -mavx512vnni -mavx512vbmi",
	features: []string{"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512vnni", "avx512vbmi"},
}

// variantSource is one source compiled for both targets.
type variantSource struct {
	pkg  string // the pkgs entry that compiles it for the baseline
	file string // its file name in that package's source folder
	into string // the variant package that compiles it again
}

var variantSources = []variantSource{
	{"ggml/cpu", "vec.cpp", "ggml/cpu/avx512"},
	{"ggml/cpu", "unary-ops.cpp", "ggml/cpu/avx512"},
	{"ggml/cpu", "binary-ops.cpp", "ggml/cpu/avx512"},
	{"ggml/cpu/x86", "quants.c", "ggml/cpu/avx512"},
	{"ggml/cpu/x86", "repack.cpp", "ggml/cpu/avx512"},
	{"ggml/cpu/llamafile", "sgemm.cpp", "ggml/cpu/avx512"},
	// The largest source in a package of its own: Go compiles packages in
	// parallel.
	{"ggml/cpu", "ops.cpp", "ggml/cpu/avx512ops"},
}

// typeRenames are C++ types with external linkage defined in a source,
// renamed in its AVX-512 copy so that the std:: templates instantiated over
// them (sort's helpers over ops.cpp's comparators) are not merged with the
// baseline copy's.
var typeRenames = map[string][]string{
	"ggml/cpu/ops.cpp": {"cmp_argsort", "cmp_top_k"},
}

// kernPkg is the package of vlm's own CPU kernels (hand-written C; ccgen
// writes only its cgo_paths.go). The AVX-512 dispatch points a slot in
// overrides at its function instead of ggml's AVX-512 copy; that function
// runs ggml's copy (f__vlm_avx512) for every case it does not take.
const kernPkg = "internal/vlmkern"

// overrides maps a ggml function compiled for both targets to vlm's kernel
// that is its AVX-512 target.
var overrides = map[string]string{
	"ggml_compute_forward_flash_attn_ext": "vlm_flash_attn_ext_avx512",
}

// variantCons is the build constraint of everything variant-specific.
const variantCons = "cgo && !darwin && amd64 && !vlm_march"

// symbolsFile lists the functions and data of each variant source.
const symbolsFile = "internal/ccgen/symbols.txt"

// symbols holds, per variant source ("pkg/file"), its function and data names.
type symbols struct {
	version string
	funcs   map[string][]string
	data    map[string][]string
}

func (v variantSource) key() string { return v.pkg + "/" + v.file }

func readSymbols(root string) (symbols, error) {
	s := symbols{funcs: map[string][]string{}, data: map[string][]string{}}
	f, err := os.Open(filepath.Join(root, filepath.FromSlash(symbolsFile)))
	if err != nil {
		return s, fmt.Errorf("%w (go run ./internal/ccgen -symbols writes it)", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "# version "); ok {
			s.version = v
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 3 {
			return s, fmt.Errorf("%s: malformed line %q", symbolsFile, line)
		}
		switch fs[1] {
		case "func":
			s.funcs[fs[0]] = append(s.funcs[fs[0]], fs[2])
		case "data":
			s.data[fs[0]] = append(s.data[fs[0]], fs[2])
		default:
			return s, fmt.Errorf("%s: unknown kind in %q", symbolsFile, line)
		}
	}
	return s, sc.Err()
}

// renames returns the #define lines of one copy of a variant source.
func renames(syms symbols, v variantSource, suffix string, variant bool) string {
	var b strings.Builder
	for _, f := range syms.funcs[v.key()] {
		fmt.Fprintf(&b, "#define %s %s__vlm_%s\n", f, f, suffix)
	}
	if variant {
		for _, d := range syms.data[v.key()] {
			fmt.Fprintf(&b, "#define %s %s__vlm_%s\n", d, d, suffix)
		}
		for _, t := range typeRenames[v.key()] {
			fmt.Fprintf(&b, "#define %s %s__vlm_%s\n", t, t, suffix)
		}
	}
	return b.String()
}

// baselineRenames is the block a baseline wrapper of a variant source starts
// with; "" for other sources.
func baselineRenames(syms symbols, pkgDir, file string) string {
	for _, v := range variantSources {
		if v.pkg == pkgDir && v.file == file {
			return "#ifdef VLM_CPU_VARIANTS\n" + renames(syms, v, "v3", false) + "#endif\n"
		}
	}
	return ""
}

// genVariants writes the variant packages and dispatch.c.
func genVariants(cfg config, syms symbols, files map[string][]byte) error {
	if syms.version != cfg.version {
		return fmt.Errorf("%s is for %s %s, go.mod pins %s: run go run ./internal/ccgen -symbols, then go generate",
			symbolsFile, ollamaModule, syms.version, cfg.version)
	}
	byPkg := map[string][]variantSource{}
	var dirs []string
	for _, v := range variantSources {
		if len(syms.funcs[v.key()]) == 0 {
			return fmt.Errorf("%s lists no functions of %s: run go run ./internal/ccgen -symbols", symbolsFile, v.key())
		}
		if byPkg[v.into] == nil {
			dirs = append(dirs, v.into)
		}
		byPkg[v.into] = append(byPkg[v.into], v)
	}
	var imp bytes.Buffer
	fmt.Fprintf(&imp, "// Code generated by internal/ccgen; DO NOT EDIT.\n\n//go:build %s\n\npackage cpu\n\n// The AVX-512 copies of the hottest kernels, chosen at run time.\nimport (\n", variantCons)
	for i, dir := range dirs {
		if err := genVariantPkg(cfg, syms, dir, byPkg[dir], i == 0, files); err != nil {
			return err
		}
		fmt.Fprintf(&imp, "\t_ %q\n", cfg.vlmModule+"/"+outRoot+"/"+dir)
	}
	fmt.Fprintf(&imp, "\t_ %q\n", cfg.vlmModule+"/"+kernPkg)
	imp.WriteString(")\n")
	files[outRoot+"/ggml/cpu/imports_variants.go"] = imp.Bytes()
	return genKernPaths(cfg, files)
}

// genKernPaths writes the include flags of kernPkg: ggml's headers, including
// the CPU backend's internal ones (struct ggml_compute_params, ggml_barrier).
func genKernPaths(cfg config, files map[string][]byte) error {
	up := upFrom(kernPkg)
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by internal/ccgen; DO NOT EDIT.\n\n//go:build %s\n\npackage %s\n\n", variantCons, path.Base(kernPkg))
	fmt.Fprintf(&b, "// The headers of ggml from %s %s.\n\n", ollamaModule, cfg.version)
	for _, l := range common {
		b.WriteString("// #cgo " + l + "\n")
	}
	for _, rel := range []string{"ml/backend/ggml/ggml/src/ggml-cpu", "ml/backend/ggml/ggml/src", "ml/backend/ggml/ggml/include"} {
		b.WriteString("// #cgo CPPFLAGS: ")
		var dirs []string
		for _, p := range prefixes(cfg, "", up) {
			dirs = append(dirs, p+"/"+rel)
		}
		b.WriteString(includeFlags("", dirs) + "\n")
	}
	b.WriteString("import \"C\"\n")
	files[kernPkg+"/cgo_paths.go"] = b.Bytes()
	// Its C files include this first, so that an incomplete vendor/ tree
	// stops them with the message that names the fix, as the wrappers do.
	files[kernPkg+"/missing.h"] = []byte("// Code generated by internal/ccgen; DO NOT EDIT.\n\n" + missingCheck(cfg, `"ggml.h"`))
	return nil
}

func pkgByDir(dir string) pkg {
	for _, p := range pkgs {
		if p.dir == dir {
			return p
		}
	}
	panic("no package " + dir)
}

func genVariantPkg(cfg config, syms symbols, dir string, srcs []variantSource, withDispatch bool, files map[string][]byte) error {
	up := upFrom(outRoot + "/" + dir)
	name := path.Base(dir)
	out := outRoot + "/" + dir + "/"
	var body []string
	seenLine := map[string]bool{}
	add := func(l string) {
		if !seenLine[l] {
			seenLine[l] = true
			body = append(body, l)
		}
	}
	// The origin packages' folders first (as cgo would put each one's own
	// folder), then the module's root, then their own directives.
	var origins []string
	for _, v := range srcs {
		if !seenLine["origin "+v.pkg] {
			seenLine["origin "+v.pkg] = true
			origins = append(origins, v.pkg)
		}
	}
	for _, o := range origins {
		l, err := expand(cfg, "", up, pkgByDir(o).src, "CPPFLAGS: -I${SRCDIR}")
		if err != nil {
			return err
		}
		add(l)
	}
	add("// #cgo CPPFLAGS: " + includeFlags("", prefixes(cfg, "", up)))
	for _, l := range common {
		add("// #cgo " + l)
	}
	for _, o := range origins {
		p := pkgByDir(o)
		lines, err := cgoLines(filepath.Join(cfg.ollamaDir, filepath.FromSlash(p.src)))
		if err != nil {
			return err
		}
		for _, l := range lines[""] {
			e, err := expand(cfg, "", up, p.src, l)
			if err != nil {
				return err
			}
			add(e)
		}
	}
	add("// #cgo CFLAGS: -O3 -g0 " + cpuVariant.flags)
	add("// #cgo CXXFLAGS: -O3 -g0 " + cpuVariant.flags)
	if withDispatch {
		add(`// #include "chosen.h"`)
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by internal/ccgen; DO NOT EDIT.\n\n//go:build %s\n\n", variantCons)
	fmt.Fprintf(&b, "// Package %s compiles ggml CPU kernels of %s %s a second time, for\n", name, ollamaModule, cfg.version)
	fmt.Fprintf(&b, "// CPUs with AVX-512 (%s), under renamed functions; ", cpuVariant.flags)
	if withDispatch {
		b.WriteString("its dispatch.c\n// chooses between them and the x86-64-v3 copies when the program starts.\n")
	} else {
		b.WriteString("see internal/ccgen/variants.go.\n")
	}
	fmt.Fprintf(&b, "package %s\n\n%s\nimport \"C\"\n", name, strings.Join(body, "\n"))
	if withDispatch {
		b.WriteString("\n// Chosen reports whether the AVX-512 kernels run in this process.\n")
		b.WriteString("func Chosen() bool { return C.vlm_cpu_variant_chosen != 0 }\n")
		// The dispatch package holds the trampolines of every source.
		files[out+"chosen.h"] = []byte("// Code generated by internal/ccgen; DO NOT EDIT.\n\nextern int vlm_cpu_variant_chosen;\n")
		files[out+"dispatch.c"] = dispatchFile(syms)
	}
	files[out+"cgo.go"] = b.Bytes()
	for _, v := range srcs {
		src := pkgByDir(v.pkg).src + "/" + v.file
		files[out+strings.ReplaceAll(v.pkg, "/", "_")+"_"+v.file] = fmt.Appendf(nil,
			"// Code generated by internal/ccgen; DO NOT EDIT.\n\n//go:build %s\n\n%s%s#include \"%s\"\n",
			variantCons, missingCheck(cfg, `"ml/backend/ggml/ggml/include/ggml.h"`), renames(syms, v, cpuVariant.name, true), src)
	}
	return nil
}

// dispatchFile is the C file with one trampoline per function and the
// constructor that points them at the AVX-512 copies.
func dispatchFile(syms symbols) []byte {
	var all []string
	for _, v := range variantSources {
		all = append(all, syms.funcs[v.key()]...)
	}
	sort.Strings(all)
	var b bytes.Buffer
	fmt.Fprintf(&b, `// Code generated by internal/ccgen; DO NOT EDIT.

//go:build %s

// Each function of the kernels compiled twice is a jump through a slot that
// starts at the x86-64-v3 copy; before main, vlm_choose_cpu_variant points
// every slot at the AVX-512 copy when the CPU has %s
// and the OS saves the AVX-512 registers (libgcc's __builtin_cpu_supports
// checks both). VLM_CPU_VARIANT=x86-64-v3 keeps the baseline.

#include <stdlib.h>
#include <string.h>

#include "chosen.h"

int vlm_cpu_variant_chosen;

#define VLM_TRAMPOLINE(f) \
	extern char f##__vlm_v3[], f##__vlm_%[3]s[]; \
	__attribute__((visibility("hidden"))) void *vlm_slot_##f = (void *)f##__vlm_v3; \
	__asm__(".pushsection .text\n\t.globl " #f "\n\t.type " #f ", @function\n\t.p2align 4\n" #f ":\n\tjmp *vlm_slot_" #f "(%%rip)\n\t.size " #f ", .-" #f "\n\t.popsection\n");

`, variantCons, strings.Join(cpuVariant.features, ", "), cpuVariant.name)
	for _, f := range all {
		fmt.Fprintf(&b, "VLM_TRAMPOLINE(%s)\n", f)
	}
	b.WriteString("\nstatic void **const vlm_slots[] = {\n")
	for _, f := range all {
		fmt.Fprintf(&b, "\t&vlm_slot_%s,\n", f)
	}
	fmt.Fprintf(&b, "};\n\n")
	for _, f := range all {
		if o := overrides[f]; o != "" {
			fmt.Fprintf(&b, "// %s's AVX-512 target is vlm's (%s), which runs %s__vlm_%s where it does not apply.\nextern char %s[];\n", f, kernPkg, f, cpuVariant.name, o)
		}
	}
	fmt.Fprintf(&b, "\nstatic void *const vlm_%s_targets[] = {\n", cpuVariant.name)
	for _, f := range all {
		if o := overrides[f]; o != "" {
			fmt.Fprintf(&b, "\t(void *)%s,\n", o)
			continue
		}
		fmt.Fprintf(&b, "\t(void *)%s__vlm_%s,\n", f, cpuVariant.name)
	}
	b.WriteString("};\n\n__attribute__((constructor)) static void vlm_choose_cpu_variant(void) {\n")
	b.WriteString("\tconst char *force = getenv(\"VLM_CPU_VARIANT\");\n")
	b.WriteString("\tif (force != NULL && strcmp(force, \"x86-64-v3\") == 0) {\n\t\treturn;\n\t}\n")
	b.WriteString("\t__builtin_cpu_init();\n\tif (!(")
	for i, f := range cpuVariant.features {
		if i > 0 {
			b.WriteString(" &&\n\t      ")
		}
		fmt.Fprintf(&b, "__builtin_cpu_supports(%q)", f)
	}
	b.WriteString(")) {\n\t\treturn;\n\t}\n")
	fmt.Fprintf(&b, "\tfor (size_t i = 0; i < sizeof(vlm_slots) / sizeof(vlm_slots[0]); i++) {\n\t\t*vlm_slots[i] = vlm_%s_targets[i];\n\t}\n", cpuVariant.name)
	b.WriteString("\tvlm_cpu_variant_chosen = 1;\n}\n")
	return b.Bytes()
}

// writeSymbols compiles every variant source for both targets, checks that
// the copies share no weak symbol, and writes symbols.txt.
func writeSymbols(root string, cfg config) error {
	var out bytes.Buffer
	fmt.Fprintf(&out, "# Functions and data of the sources vlm compiles for two CPU targets\n# (internal/ccgen/variants.go). Written by go run ./internal/ccgen -symbols.\n# version %s\n", cfg.version)
	tmp, err := os.MkdirTemp("", "ccgen-symbols-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, v := range variantSources {
		base, err := compileSyms(cfg, tmp, v, "-march=x86-64-v3", "")
		if err != nil {
			return err
		}
		// The AVX-512 copy under its renames: its weak symbols must all be its own.
		found := symbols{funcs: map[string][]string{v.key(): base.funcs}, data: map[string][]string{v.key(): base.data}}
		wide, err := compileSyms(cfg, tmp, v, cpuVariant.flags, renames(found, v, cpuVariant.name, true))
		if err != nil {
			return err
		}
		baseWeak := map[string]bool{}
		for _, w := range base.weak {
			baseWeak[w] = true
		}
		for _, w := range wide.weak {
			if baseWeak[w] {
				return fmt.Errorf("%s: both copies define the weak symbol %s, which the linker would merge: add the local type it is instantiated over to typeRenames", v.key(), w)
			}
		}
		for _, f := range wide.funcs {
			if !strings.HasSuffix(f, "__vlm_"+cpuVariant.name) {
				return fmt.Errorf("%s: the AVX-512 copy defines %s, which the baseline does not", v.key(), f)
			}
		}
		if len(wide.funcs) != len(base.funcs) {
			return fmt.Errorf("%s: %d functions for x86-64-v3, %d for AVX-512", v.key(), len(base.funcs), len(wide.funcs))
		}
		for _, f := range base.funcs {
			fmt.Fprintf(&out, "%s func %s\n", v.key(), f)
		}
		for _, d := range base.data {
			fmt.Fprintf(&out, "%s data %s\n", v.key(), d)
		}
	}
	return os.WriteFile(filepath.Join(root, filepath.FromSlash(symbolsFile)), out.Bytes(), 0o644)
}

type objSyms struct{ funcs, data, weak []string }

// compileSyms compiles one source with its package's directives and lists
// the global symbols it defines.
func compileSyms(cfg config, tmp string, v variantSource, target, prelude string) (objSyms, error) {
	var s objSyms
	p := pkgByDir(v.pkg)
	srcDir := filepath.Join(cfg.ollamaDir, filepath.FromSlash(p.src))
	lines, err := cgoLines(srcDir)
	if err != nil {
		return s, err
	}
	args := []string{"-I" + srcDir, "-I" + cfg.ollamaDir, "-DNDEBUG", "-O3", "-w", "-g0"}
	args = append(args, strings.Fields(target)...)
	cxx := strings.HasSuffix(v.file, ".cpp")
	for _, l := range lines[""] {
		head, flags, _ := strings.Cut(l, ":")
		switch strings.TrimSpace(head) {
		case "CPPFLAGS", "linux CPPFLAGS":
		case "CFLAGS":
			if cxx {
				continue
			}
		case "CXXFLAGS":
			if !cxx {
				continue
			}
		default:
			continue
		}
		for _, f := range strings.Fields(flags) {
			args = append(args, strings.ReplaceAll(f, "${SRCDIR}", srcDir))
		}
	}
	wrapper := filepath.Join(tmp, strings.ReplaceAll(v.key(), "/", "_"))
	if err := os.WriteFile(wrapper, []byte(prelude+"#include \""+filepath.Join(srcDir, v.file)+"\"\n"), 0o644); err != nil {
		return s, err
	}
	compiler, lang := "gcc", "c"
	if cxx {
		compiler, lang = "g++", "c++"
	}
	obj := wrapper + ".o"
	cmd := exec.Command(compiler, append(args, "-x", lang, "-c", wrapper, "-o", obj)...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return s, fmt.Errorf("%s %s: %v\n%s", compiler, strings.Join(cmd.Args[1:], " "), err, msg)
	}
	nm, err := exec.Command("nm", "--defined-only", "-g", obj).Output()
	if err != nil {
		return s, fmt.Errorf("nm %s: %w", obj, err)
	}
	for _, line := range strings.Split(string(nm), "\n") {
		fs := strings.Fields(line)
		if len(fs) != 3 {
			continue
		}
		switch fs[1] {
		case "T":
			if strings.HasPrefix(fs[2], "_Z") {
				return s, fmt.Errorf("%s defines the C++ function %s: only C names can be renamed", v.key(), fs[2])
			}
			s.funcs = append(s.funcs, fs[2])
		case "D", "B", "R":
			s.data = append(s.data, fs[2])
		case "W", "V", "u":
			s.weak = append(s.weak, fs[2])
		default:
			return s, fmt.Errorf("%s: symbol %s of kind %s", v.key(), fs[2], fs[1])
		}
	}
	sort.Strings(s.funcs)
	sort.Strings(s.data)
	return s, nil
}
