// Command ccgen writes the build-only packages under internal/cc that compile
// llama.cpp, ggml and mtmd from the pinned github.com/ollama/ollama module
// with vlm's own flags, so that `go build` in a module that requires vlm
// needs no CGO_* variables.
//
// Each C/C++ source file that one of the module's cgo packages compiles gets
// a one-line wrapper here (`#include "<path in the module>"`); the module's
// own #cgo directives are carried over with their ${SRCDIR} paths rewritten to
// point into the module's directory, which sits at a fixed place relative to
// vlm's: beside it in the module cache (…/github.com/ollama/ollama@VERSION),
// under vendor/ (…/github.com/ollama/ollama), or in a checkout of vlm at the
// git-ignored link third_party/ollama@VERSION that build.sh creates. (The
// vendor/ candidate is for a later module version: `go mod vendor` copies only
// folders with Go packages, and v0.17.4's ggml/include, llama.cpp/include and
// ggml-cpu/amx have none, so a vendored consumer lacks ggml.h and llama.h.) No
// source file of the module is copied: a version bump is a go.mod change and
// `go generate` (TestGenerated fails until it has run).
//
// Run it from the module root: go generate (binding.go), or go run ./internal/ccgen
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/build"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
)

const (
	ollamaModule = "github.com/ollama/ollama"
	outRoot      = "internal/cc"
)

// pkg maps one of the module's cgo packages to a vlm package.
type pkg struct {
	dir     string   // vlm package, relative to the module root
	src     string   // the module's package, relative to the module's root
	cons    string   // build constraint of every file (besides cgo)
	imports []string // vlm packages this one imports, "constraint:path" where only some platforms
	extra   []string // extra #cgo lines, ${VLM} = vlm's root, ${OLLAMA} = the module's root (three candidates)
	split   int      // spread the sources over this many packages (dir/0, dir/1, …)
	doc     string
}

const ggmlCons = "!darwin && (amd64 || arm64)"

var pkgs = []pkg{
	{dir: "ggml", src: "ml/backend/ggml/ggml/src", cons: ggmlCons,
		imports: []string{"ggml/cpu"},
		doc:     "ggml's core library (ggml-base) and backend registry"},
	{dir: "ggml/cpu", src: "ml/backend/ggml/ggml/src/ggml-cpu", cons: ggmlCons,
		imports: []string{"ggml/cpu/llamafile", "amd64:ggml/cpu/x86", "arm64:ggml/cpu/arm"},
		doc:     "ggml's CPU backend"},
	{dir: "ggml/cpu/x86", src: "ml/backend/ggml/ggml/src/ggml-cpu/arch/x86", cons: "!darwin && amd64",
		doc: "the x86 kernels of ggml's CPU backend"},
	{dir: "ggml/cpu/arm", src: "ml/backend/ggml/ggml/src/ggml-cpu/arch/arm", cons: "!darwin && arm64",
		doc: "the arm kernels of ggml's CPU backend"},
	{dir: "ggml/cpu/llamafile", src: "ml/backend/ggml/ggml/src/ggml-cpu/llamafile", cons: ggmlCons,
		doc: "llamafile's matrix multiplication (sgemm) for ggml's CPU backend"},
	{dir: "llama", src: "llama/llama.cpp/src",
		imports: []string{"llama/models/0", "llama/models/1", "llama/models/2", "llama/models/3"},
		doc:     "libllama"},
	{dir: "llama/models", src: "llama/llama.cpp/src/models", split: 4,
		doc: "libllama's model graphs"},
	{dir: "mtmd", src: "llama/llama.cpp/tools/mtmd",
		imports: []string{"mtmd/models"},
		// The module zip lacks llama.cpp's vendor/ folder: vlm's stand-ins
		// for miniaudio.h and stb_image.h come first.
		extra: []string{"CPPFLAGS: -I${VLM}/third_party/compat"},
		doc:   "libmtmd (llama.cpp's multimodal library)"},
	{dir: "mtmd/models", src: "llama/llama.cpp/tools/mtmd/models",
		doc: "libmtmd's vision encoders"},
}

// Flags of every package: a release build (without NDEBUG llama.cpp aborts
// where it should return errors) without warnings (the go command would
// print llama.cpp's to every user on the first build).
var common = []string{
	"CPPFLAGS: -DNDEBUG",
	"CFLAGS: -w",
	"CXXFLAGS: -w",
}

// optLevel is the package's optimisation level (in defaults.go, so that a
// VLM_MARCH build keeps the -O3 of its CGO_CFLAGS everywhere): -O3 for ggml's
// CPU backend, as ggml's own build; -O2 elsewhere, as the module's cgo
// packages (Go's default), where little time is spent at run time (model
// loading, graph building, tokenizing, image preprocessing) and -O3 would
// make the first build about a sixth longer.
func (p pkg) optLevel() string {
	if p.dir == "ggml/cpu" || strings.HasPrefix(p.dir, "ggml/cpu/") {
		return "-O3"
	}
	return "-O2"
}

// vlm's defaults, which the build tag vlm_march drops (cmd/vlm-env sets it
// with CGO_CFLAGS and CGO_CXXFLAGS that carry their own target): on x86-64,
// x86-64-v3 (AVX2, FMA, F16C; any x86-64 CPU since about 2015); gcc takes the
// last -march, and cgo puts the environment's flags before a package's own.
// And no debug information (Go's default CGO_CFLAGS are -O2 -g): it makes the
// first compile of llama.cpp about a third slower and the program larger.
const defaultsFile = `// Code generated by internal/ccgen; DO NOT EDIT.

//go:build %s

package %s

// #cgo CFLAGS: -g0 %[3]s
// #cgo CXXFLAGS: -g0 %[3]s
// #cgo amd64,!darwin CFLAGS: -march=x86-64-v3
// #cgo amd64,!darwin CXXFLAGS: -march=x86-64-v3
// #cgo amd64,!darwin CPPFLAGS: -DVLM_CPU_VARIANTS
import "C"
`

type config struct {
	root      string // vlm's checkout
	vlmModule string // vlm's module path
	ollamaDir string // where the module's files are
	version   string // its version
}

func main() {
	syms := flag.Bool("symbols", false, "first compile the sources built for two CPU targets and write "+symbolsFile+" (after a version bump)")
	flag.Parse()
	cfg, err := load(".")
	if err == nil && *syms {
		err = writeSymbols(".", cfg)
	}
	if err == nil {
		var files map[string][]byte
		files, err = generate(cfg)
		if err == nil {
			err = write(".", files)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ccgen:", err)
		os.Exit(1)
	}
}

// load finds the module's directory and version from the point of view of the
// module in root.
func load(root string) (config, error) {
	cfg := config{root: root}
	out, err := goCmd(root, "list", "-m", "-f", "{{.Path}}")
	if err != nil {
		return cfg, err
	}
	cfg.vlmModule = strings.TrimSpace(out)
	out, err = goCmd(root, "list", "-m", "-f", "{{.Version}} {{.Dir}} {{with .Replace}}replaced{{end}}", ollamaModule)
	if err != nil {
		return cfg, err
	}
	f := strings.Fields(out)
	if len(f) < 2 {
		return cfg, fmt.Errorf("%s has no directory: run `go mod download %s`", ollamaModule, ollamaModule)
	}
	if len(f) > 2 {
		return cfg, fmt.Errorf("%s is replaced in go.mod: generate with the pinned version", ollamaModule)
	}
	cfg.version, cfg.ollamaDir = f[0], f[1]
	return cfg, nil
}

func goCmd(dir string, args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("go %s: %v: %s", strings.Join(args, " "), err, ee.Stderr)
		}
		return "", err
	}
	return string(out), nil
}

// generate returns the files of internal/cc, by path relative to the module root.
func generate(cfg config) (map[string][]byte, error) {
	files := map[string][]byte{}
	syms, err := readSymbols(cfg.root)
	if err != nil {
		return nil, err
	}
	for _, p := range pkgs {
		if err := genPkg(cfg, syms, p, files); err != nil {
			return nil, err
		}
	}
	if err := genVariants(cfg, syms, files); err != nil {
		return nil, err
	}
	root, err := rootFile(cfg)
	if err != nil {
		return nil, err
	}
	files["cgo_paths.go"] = root
	files["vendor_sources.go"] = vendorFile(cfg)
	for name, data := range files {
		if strings.HasSuffix(name, ".go") {
			if files[name], err = format.Source(data); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return files, nil
}

// prefixes returns the three places the module's root may be, as seen from
// a vlm package up directories below vlm's root, in the order they are tried.
// srcdir is "${SRCDIR}/" for the root package, whose cgo-generated C files
// gcc compiles in a work directory, and "" for the wrapper packages: gcc
// compiles their C/C++ files in the package's own directory, so paths
// relative to it work, and they keep the checkout's location out of the
// flags and so out of Go's build cache key (with -trimpath, a second clone
// reuses the compiled llama.cpp).
func prefixes(cfg config, srcdir, up string) []string {
	n := len(strings.Split(cfg.vlmModule, "/"))
	toTop := strings.Repeat("../", n)
	return []string{
		srcdir + up + toTop + escapePath(ollamaModule) + "@" + cfg.version, // module cache
		srcdir + up + toTop + ollamaModule,                                 // vendor/
		srcdir + up + checkoutLink(cfg),                                    // a checkout (build.sh's link)
	}
}

// checkoutLink is the link build.sh makes in a checkout of vlm.
func checkoutLink(cfg config) string {
	return "third_party/" + path.Base(ollamaModule) + "@" + cfg.version
}

// includeFlag returns the flag that adds dir to the include path, for a #cgo
// line whose flag was flag (e.g. "-I"). The wrapper packages (srcdir "") use
// "-isystem dir": the go command makes relative -I and -L paths absolute
// (go/build's makePathsAbsolute), which would put the checkout's folder back
// into the flags and so into Go's build cache key; -isystem paths stay as
// written. Those folders are searched after -I ones (only Go's own object
// folder uses -I there) and in the order given, as -I folders are; with -w,
// the other effect of -isystem (no warnings from those headers) changes
// nothing.
func includeFlag(srcdir, flag, dir string) string {
	if srcdir == "" && flag == "-I" {
		return "-isystem " + dir
	}
	return flag + dir
}

// includeFlags returns the include flags for dirs, in order.
func includeFlags(srcdir string, dirs []string) string {
	fs := make([]string, len(dirs))
	for i, d := range dirs {
		fs[i] = includeFlag(srcdir, "-I", d)
	}
	return strings.Join(fs, " ")
}

// escapePath is the module cache's case encoding (golang.org/x/mod/module.EscapePath).
func escapePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// upFrom returns the "../" path from a package directory to vlm's root.
func upFrom(dir string) string {
	return strings.Repeat("../", len(strings.Split(dir, "/")))
}

// expand writes the directive lines for one #cgo line: ${SRCDIR}-relative
// paths into the module become one path per candidate place.
func expand(cfg config, srcdir, up, srcRel, line string) (string, error) {
	head, flags, ok := strings.Cut(line, ":")
	if !ok {
		return "", fmt.Errorf("malformed #cgo line %q", line)
	}
	var out []string
	for _, f := range strings.Fields(flags) {
		i := strings.Index(f, "${SRCDIR}")
		switch {
		case strings.HasPrefix(f, "-I${VLM}"):
			out = append(out, includeFlag(srcdir, "-I", strings.ReplaceAll(f[2:], "${VLM}", srcdir+strings.TrimSuffix(up, "/"))))
		case strings.Contains(f, "${VLM}"):
			out = append(out, strings.ReplaceAll(f, "${VLM}", srcdir+strings.TrimSuffix(up, "/")))
		case i >= 0:
			rel := path.Clean(path.Join(srcRel, f[i+len("${SRCDIR}"):]))
			if rel == ".." || strings.HasPrefix(rel, "../") {
				return "", fmt.Errorf("#cgo path %q leaves the module", f)
			}
			for _, p := range prefixes(cfg, srcdir, up) {
				out = append(out, includeFlag(srcdir, f[:i], p+"/"+rel))
			}
		default:
			out = append(out, f)
		}
	}
	return "// #cgo " + strings.TrimSpace(head) + ": " + strings.Join(out, " "), nil
}

// cgoLines returns the #cgo lines of the module's Go files in dir that build
// on linux/amd64 or linux/arm64, grouped by the file's build constraint ("" for none).
func cgoLines(dir string) (map[string][]string, error) {
	ctxs := []build.Context{build.Default, build.Default}
	ctxs[0].GOOS, ctxs[0].GOARCH = "linux", "amd64"
	ctxs[1].GOOS, ctxs[1].GOARCH = "linux", "arm64"
	for i := range ctxs {
		ctxs[i].CgoEnabled = true
		ctxs[i].BuildTags = nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	lines := map[string][]string{}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		match := false
		for _, c := range ctxs {
			if ok, err := c.MatchFile(dir, name); err == nil && ok {
				match = true
			}
		}
		if !match {
			continue
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		cons := ""
		for _, cg := range f.Comments {
			if cg.Pos() > f.Package {
				break
			}
			for _, c := range cg.List {
				if strings.HasPrefix(c.Text, "//go:build ") {
					cons = strings.TrimPrefix(c.Text, "//go:build ")
				}
			}
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.IMPORT || len(gd.Specs) != 1 {
				continue
			}
			if spec := gd.Specs[0].(*ast.ImportSpec); spec.Path.Value != `"C"` || gd.Doc == nil {
				continue
			}
			for _, l := range strings.Split(gd.Doc.Text(), "\n") {
				l = strings.TrimSpace(l)
				if strings.HasPrefix(l, "#cgo ") {
					lines[cons] = append(lines[cons], strings.TrimPrefix(l, "#cgo "))
				}
			}
		}
	}
	return lines, nil
}

// sources returns the C and C++ files that cgo compiles in dir on linux.
func sources(dir string) ([]string, error) {
	var all []string
	seen := map[string]bool{}
	for _, arch := range []string{"amd64", "arm64"} {
		ctx := build.Default
		ctx.GOOS, ctx.GOARCH, ctx.CgoEnabled, ctx.BuildTags = "linux", arch, true, nil
		bp, err := ctx.ImportDir(dir, 0)
		if err != nil {
			var ng *build.NoGoError
			if errors.As(err, &ng) {
				continue
			}
			return nil, err
		}
		for _, f := range append(append([]string{}, bp.CFiles...), bp.CXXFiles...) {
			if !seen[f] {
				seen[f] = true
				all = append(all, f)
			}
		}
		if len(bp.MFiles) > 0 || len(bp.SFiles) > 0 {
			return nil, fmt.Errorf("%s has Objective-C or assembly files, which ccgen does not handle", dir)
		}
	}
	sort.Strings(all)
	return all, nil
}

func genPkg(cfg config, syms symbols, p pkg, files map[string][]byte) error {
	srcDir := filepath.Join(cfg.ollamaDir, filepath.FromSlash(p.src))
	srcs, err := sources(srcDir)
	if err != nil {
		return err
	}
	if len(srcs) == 0 {
		return fmt.Errorf("%s: no C/C++ files in %s (did the module move them?)", p.dir, p.src)
	}
	lines, err := cgoLines(srcDir)
	if err != nil {
		return err
	}
	if len(lines) == 0 {
		return fmt.Errorf("%s: no #cgo directives in %s", p.dir, p.src)
	}
	if lines[""] == nil {
		lines[""] = []string{}
	}
	dirs := []string{p.dir}
	chunks := [][]string{srcs}
	if p.split > 1 {
		dirs, chunks = nil, nil
		per := (len(srcs) + p.split - 1) / p.split
		for i := 0; i < p.split; i++ {
			lo, hi := min(i*per, len(srcs)), min((i+1)*per, len(srcs))
			dirs = append(dirs, fmt.Sprintf("%s/%d", p.dir, i))
			chunks = append(chunks, srcs[lo:hi])
		}
	}
	for i, dir := range dirs {
		if err := genDir(cfg, syms, p, dir, chunks[i], lines, files); err != nil {
			return err
		}
	}
	return nil
}

func cons(p pkg, more string) string {
	c := "cgo"
	if p.cons != "" {
		c += " && " + p.cons
	}
	if more != "" {
		c += " && (" + more + ")"
	}
	return c
}

func genDir(cfg config, syms symbols, p pkg, dir string, srcs []string, lines map[string][]string, files map[string][]byte) error {
	up := upFrom(outRoot + "/" + dir)
	name := path.Base(dir)
	if name[0] >= '0' && name[0] <= '9' {
		name = path.Base(path.Dir(dir)) + name
	}
	out := outRoot + "/" + dir + "/"
	for _, s := range srcs {
		files[out+s] = fmt.Appendf(nil, "// Code generated by internal/ccgen; DO NOT EDIT.\n\n//go:build %s\n\n%s%s#include \"%s/%s\"\n",
			cons(p, ""), missingCheck(cfg, `"ml/backend/ggml/ggml/include/ggml.h"`), baselineRenames(syms, p.dir, s), p.src, s)
	}
	var keys []string
	for k := range lines {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var b bytes.Buffer
		fmt.Fprintf(&b, "// Code generated by internal/ccgen; DO NOT EDIT.\n\n//go:build %s\n\n", cons(p, k))
		file := "cgo_" + strings.Map(func(r rune) rune {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				return r
			}
			return '_'
		}, k) + ".go"
		if k == "" {
			file = "cgo.go"
			fmt.Fprintf(&b, "// Package %s compiles %s: %s of %s %s,\n", name, p.doc, p.src, ollamaModule, cfg.version)
			fmt.Fprintf(&b, "// with vlm's flags. Its files include the module's sources; see internal/ccgen.\n")
		}
		fmt.Fprintf(&b, "package %s\n\n", name)
		var body []string
		if k == "" {
			// The module's package directory first, as cgo puts a package's
			// own directory first (headers in its subfolders include headers
			// beside the sources); then the module's root: the wrappers
			// include paths in it.
			own, err := expand(cfg, "", up, p.src, "CPPFLAGS: -I${SRCDIR}")
			if err != nil {
				return err
			}
			body = append(body, own)
			body = append(body, "// #cgo CPPFLAGS: "+includeFlags("", prefixes(cfg, "", up)))
			for _, l := range p.extra {
				e, err := expand(cfg, "", up, p.src, l)
				if err != nil {
					return err
				}
				body = append(body, e)
			}
			for _, l := range common {
				body = append(body, "// #cgo "+l)
			}
		}
		for _, l := range lines[k] {
			e, err := expand(cfg, "", up, p.src, l)
			if err != nil {
				return fmt.Errorf("%s: %w", p.src, err)
			}
			body = append(body, e)
		}
		b.WriteString(strings.Join(body, "\n"))
		b.WriteString("\nimport \"C\"\n")
		if k == "" {
			var plain []string
			byCons := map[string][]string{}
			for _, imp := range p.imports {
				c, ip, ok := strings.Cut(imp, ":")
				if !ok {
					plain = append(plain, cfg.vlmModule+"/"+outRoot+"/"+c)
					continue
				}
				byCons[c] = append(byCons[c], cfg.vlmModule+"/"+outRoot+"/"+ip)
			}
			if len(plain) > 0 {
				b.WriteString("\nimport (\n")
				for _, ip := range plain {
					fmt.Fprintf(&b, "\t_ %q\n", ip)
				}
				b.WriteString(")\n")
			}
			var cs []string
			for c := range byCons {
				cs = append(cs, c)
			}
			sort.Strings(cs)
			for _, c := range cs {
				var ib bytes.Buffer
				fmt.Fprintf(&ib, "// Code generated by internal/ccgen; DO NOT EDIT.\n\n//go:build %s\n\npackage %s\n\nimport (\n", cons(p, c), name)
				for _, ip := range byCons[c] {
					fmt.Fprintf(&ib, "\t_ %q\n", ip)
				}
				ib.WriteString(")\n")
				files[out+"imports_"+c+".go"] = ib.Bytes()
			}
		}
		files[out+file] = b.Bytes()
	}
	files[out+"defaults.go"] = fmt.Appendf(nil, defaultsFile, cons(p, "!vlm_march"), name, p.optLevel())
	return nil
}

// missingCheck is the preprocessor test that turns "ggml.h: No such file or
// directory" (where the pinned module is not where vlm looks for it) into an
// error that names the cause and the fix.
func missingCheck(cfg config, header string) string {
	return fmt.Sprintf(`#if !__has_include(%s)
#error "vlm: %s %s is not where vlm looks for it: beside vlm in the module cache, or at %s in a checkout of vlm (./build.sh setup makes that link; for a replace directive to a local path run: go run github.com/vlm-go/vlm/cmd/vlm-env). A vendor/ folder cannot hold it: see Using vlm from your module in vlm's README"
#endif
`, header, ollamaModule, cfg.version, checkoutLink(cfg))
}

// vendorTag is a build tag nobody sets: go mod vendor copies the packages
// that files under any tag import, and so the module's folders whose sources
// internal/cc includes, which no build imports.
const vendorTag = "vlm_vendor"

// vendorFile imports, under vendorTag, the module's packages whose folders
// hold the sources internal/cc includes, and vlm's compat headers.
func vendorFile(cfg config) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by internal/ccgen; DO NOT EDIT.\n\n//go:build %s\n\n", vendorTag)
	b.WriteString("package vlm\n\n// Never built (nobody sets the tag): these imports make go mod vendor copy the\n")
	b.WriteString("// folders whose C/C++ sources internal/cc includes, and vlm's compat headers.\n// cmd/vlm-env -vendor adds the header folders that hold no Go package.\nimport (\n")
	seen := map[string]bool{}
	for _, p := range pkgs {
		if !seen[p.src] {
			seen[p.src] = true
			fmt.Fprintf(&b, "\t_ %q\n", ollamaModule+"/"+p.src)
		}
	}
	for _, c := range []string{"third_party/compat", "third_party/compat/miniaudio", "third_party/compat/stb"} {
		fmt.Fprintf(&b, "\t_ %q\n", cfg.vlmModule+"/"+c)
	}
	b.WriteString(")\n")
	return b.Bytes()
}

// rootFile is the root package's directives: llama.h, mtmd.h and ggml's headers.
func rootFile(cfg config) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("// Code generated by internal/ccgen; DO NOT EDIT.\n\n//go:build cgo\n\npackage vlm\n\n")
	fmt.Fprintf(&b, "// The headers of llama.cpp, mtmd and ggml from %s %s.\n", ollamaModule, cfg.version)
	b.WriteString("\n// #cgo CPPFLAGS: -DNDEBUG\n")
	for _, rel := range []string{"llama/llama.cpp/include", "llama/llama.cpp/tools/mtmd", "ml/backend/ggml/ggml/include"} {
		if st, err := os.Stat(filepath.Join(cfg.ollamaDir, filepath.FromSlash(rel))); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("%s has no directory %s", ollamaModule, rel)
		}
		e, err := expand(cfg, "${SRCDIR}/", "", ".", "CPPFLAGS: -I${SRCDIR}/"+rel)
		if err != nil {
			return nil, err
		}
		b.WriteString(e + "\n")
	}
	b.WriteString("//\n// " + strings.ReplaceAll(strings.TrimSpace(missingCheck(cfg, `"llama.h"`)), "\n", "\n// ") + "\nimport \"C\"\n")
	return b.Bytes(), nil
}

// write replaces internal/cc with files and writes the others.
func write(root string, files map[string][]byte) error {
	if err := os.RemoveAll(filepath.Join(root, outRoot)); err != nil {
		return err
	}
	for name, data := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
