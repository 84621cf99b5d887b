// Command vlm-server serves a vision-language model over the OpenAI chat
// completions API (package openai), with health, readiness and Prometheus
// metrics for a load balancer:
//
//	go run ./cmd/vlm-server -model model.gguf -mmproj mmproj.gguf -parallel 4
//	curl localhost:8080/v1/chat/completions -d '{"messages":[{"role":"user","content":"Hi"}]}'
//
// With no -model it serves vlm's built-in demo pair (random weights: the
// answers are gibberish, the mechanics are real) and says so. The API key,
// if any, comes from the environment variable -api-key-env names (default
// VLM_API_KEY). SIGTERM or SIGINT stops it gracefully: readiness turns 503,
// no new connections are taken, streams in flight get -shutdown-timeout to
// finish, then it exits 0.
//
// It trusts no client: headers must arrive within -read-header-timeout and
// fit -max-header-bytes, a body within -body-timeout (a trickling body is
// cut off and counted in vlm_http_body_errors_total), an idle keep-alive
// connection is closed after -idle-timeout, and beyond -max-connections a
// new connection gets 503 and is closed.
//
// With -isolated the model runs in a supervised child process
// (pipeline.ChildProcess), after a trial of the files in another: a crash
// in llama.cpp (a segfault, a GGML_ASSERT, the OOM killer) ends the requests
// in that process — with 503 and Retry-After, or an error event in a
// stream — while the server goes on; readiness is 503 until the child is
// back, and for good after -crash-loop-deaths deaths within
// -crash-loop-window.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/demo"
	"github.com/vlm-go/vlm/isolate"
	"github.com/vlm-go/vlm/openai"
	"github.com/vlm-go/vlm/pipeline"
)

func main() {
	isolate.Main() // -isolated re-executes this program: the trial, and the model's process
	os.Exit(run(context.Background(), os.Args[1:], os.Stderr, nil))
}

// run is the program; ready, if set, receives the address once it serves.
func run(ctx context.Context, args []string, stderr io.Writer, ready chan<- string) int {
	fs := flag.NewFlagSet("vlm-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "text model GGUF (empty: the built-in demo pair)")
	mmproj := fs.String("mmproj", "", "vision projector GGUF")
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (loopback by default; 0.0.0.0:8080 for all interfaces)")
	parallel := fs.Int("sequences", 4, "answers decoded together: the sequences of the one batched context (pipeline.Options.Sequences)")
	fs.IntVar(parallel, "parallel", 4, "the same as -sequences (llama-server's name)")
	ctxSize := fs.Int("ctx", 4096, "positions per request: its prompt, images included, and its answer (pipeline.Options.SequenceLength)")
	threads := fs.Int("threads", 0, "CPU threads (0: physical cores less one)")
	ngl := fs.Int("ngl", -1, "layers on the GPU when one is loaded: -1 all, 0 none (CPU)")
	keyEnv := fs.String("api-key-env", "VLM_API_KEY", "environment variable holding the API key (unset or empty: no key)")
	maxTokens := fs.Int("max-tokens", 4096, "most tokens per answer (and the default)")
	maxBody := fs.Int64("max-body", 32<<20, "most bytes per request body")
	maxImages := fs.Int("max-images", 8, "most images per request")
	maxWaiting := fs.Int("max-waiting", 0, "requests waiting for a sequence before 429 (0: 16 per sequence, at least 64)")
	timeout := fs.Duration("timeout", 10*time.Minute, "most time per request")
	headerTimeout := fs.Duration("read-header-timeout", 10*time.Second, "most time for a request's headers to arrive")
	bodyTimeout := fs.Duration("body-timeout", 30*time.Second, "most time for a request's body to arrive (a slower one is cut off with 408)")
	idleTimeout := fs.Duration("idle-timeout", 120*time.Second, "keep-alive connections idle this long are closed")
	maxHeader := fs.Int("max-header-bytes", 64<<10, "most bytes of a request's headers (431 beyond)")
	maxConns := fs.Int("max-connections", 1024, "most open connections; beyond, a new one gets 503 and is closed (0: no bound)")
	shutdown := fs.Duration("shutdown-timeout", 30*time.Second, "time streams in flight get to finish on SIGTERM")
	debug := fs.Bool("debug", false, "log every request")
	imageMemory := fs.Int64("image-memory", 0, "bytes that decoding images may hold at once, across requests (0: 1/32 of the memory, 256-512 MiB; -1: no bound); a request over 256 MiB of images (or this) gets 413, one waiting past its timeout 429")
	isolated := fs.Bool("isolated", false, "run the model in a supervised child process (a crash in llama.cpp ends the requests in it with 503, and the child is restarted) after trying the model and projector in a child first (a file that would crash llama.cpp is refused)")
	loopDeaths := fs.Int("crash-loop-deaths", 5, "with -isolated: this many deaths of the model's process within -crash-loop-window stop its restarts (readiness then stays 503)")
	loopWindow := fs.Duration("crash-loop-window", 5*time.Minute, "with -isolated: see -crash-loop-deaths")
	hangTimeout := fs.Duration("hang-timeout", time.Minute, "with -isolated: the model's process is killed and restarted when it sends no heartbeat, or makes no decode step with requests running, for this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *headerTimeout <= 0 || *bodyTimeout <= 0 || *idleTimeout <= 0 || *maxHeader <= 0 || *maxConns < 0 {
		fmt.Fprintln(stderr, "vlm-server: -read-header-timeout, -body-timeout, -idle-timeout and -max-header-bytes must be positive, -max-connections 0 or more")
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "vlm-server: unexpected argument %q (flags only; see -h)\n", fs.Arg(0))
		return 2
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	vlm.SetLogger(log)
	if (*model == "") != (*mmproj == "") {
		fmt.Fprintln(stderr, "vlm-server: give both -model and -mmproj, or neither for the demo pair")
		return 2
	}
	if *model == "" {
		log.Warn("no -model given: serving the built-in demo pair; its weights are RANDOM, so answers are gibberish")
		var err error
		if *model, *mmproj, err = demo.Pair(ctx); err != nil {
			log.Error("writing the demo model", "err", err)
			return 1
		}
	}
	opts := pipeline.Options{
		Sequences: *parallel, SequenceLength: *ctxSize, Threads: *threads, GPULayers: max(*ngl, -1), NoGPU: *ngl == 0, MaxWaiting: *maxWaiting,
		Isolated: *isolated, ImageMemory: *imageMemory,
	}
	if *isolated {
		opts.Process = pipeline.ChildProcess
		opts.Supervisor = pipeline.Supervisor{Logger: log, CrashLoopDeaths: *loopDeaths, CrashLoopWindow: *loopWindow, HangTimeout: *hangTimeout}
	}
	p, err := pipeline.New(ctx, *model, *mmproj, opts)
	if err != nil {
		log.Error("loading the model", "err", err)
		return 1
	}
	defer p.Close()
	h := openai.NewHandler(p, openai.Options{
		APIKey: os.Getenv(*keyEnv), MaxTokens: *maxTokens, MaxBodyBytes: *maxBody, MaxImages: *maxImages, RequestTimeout: *timeout, Logger: log,
		BodyTimeout: *bodyTimeout,
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("listening", "addr", *addr, "err", err)
		return 1
	}
	if *maxConns > 0 {
		ln = limitListener(ln, *maxConns, h.Registry())
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: *headerTimeout,
		IdleTimeout:       *idleTimeout,
		MaxHeaderBytes:    *maxHeader,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("serving the OpenAI API", "addr", ln.Addr().String(), "model", *model, "sequences", *parallel, "api_key", os.Getenv(*keyEnv) != "")
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-served:
		log.Error("serving", "err", err)
		return 1
	case s := <-sigs:
		log.Info("stopping: finishing requests in flight", "signal", s.String(), "deadline", shutdown.String())
	case <-ctx.Done():
	}
	h.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), *shutdown)
	defer cancel()
	// The pipeline takes no new request and answers those it has; a
	// second before the server's deadline it ends the rest, so that their
	// handlers still write the error to their clients.
	pctx, pcancel := context.WithTimeout(context.Background(), max(*shutdown-time.Second, *shutdown/2))
	defer pcancel()
	pdone := make(chan error, 1)
	go func() { pdone <- p.Shutdown(pctx) }()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("requests still running at the deadline were cancelled", "err", err)
		srv.Close()
	}
	if err := <-pdone; err != nil {
		log.Warn("answers still running at the deadline were ended", "err", err)
	}
	log.Info("stopped")
	return 0
}
