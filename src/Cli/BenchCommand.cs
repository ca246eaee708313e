using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using ModelCompiler.Backends;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;

namespace ModelCompiler.Cli;

/// <summary>
/// <c>mc bench model [--set ...] --prompt P --gen G [--reps R] [--json]</c>: the model compiled for the CPU with the fusion
/// and kv-cache pipelines and seeded random weights (no checkpoint), then per rep two tests defined as llama.cpp's
/// llama-bench defines them: pp, one prefill of P tokens, and tg, G one-token decode steps through the KV cache, each
/// test on a fresh cache holding <c>--depth D</c> tokens first (default 0, as llama-bench's pp512/tg128; its later
/// <c>-d</c> option). Prints prompt tokens/s (pp) and generated tokens/s (tg) as medians over the reps with their spread.
/// The KV cache is paged by default (<c>--cache contiguous</c>: the older presents-as-pasts
/// graph); <c>--batch N</c> decodes N sequences in one forward per step and counts all their tokens, and also times one
/// sequence's decode in the same reps (tg x1) for the batch's speedup.
/// </summary>
internal static partial class BenchCommand
{
    public static Command Create(CliContext cli)
    {
        var model = CommonOptions.Model();
        var prompt = new Option<int>("--prompt", "-p") { Description = "prompt tokens of the prefill (pp)", DefaultValueFactory = _ => 512 };
        var gen = new Option<int>("--gen", "-n") { Description = "tokens generated one at a time through the KV cache (tg)", DefaultValueFactory = _ => 128 };
        var depth = new Option<int>("--depth", "-d") { Description = "tokens already in the KV cache when each test starts (llama-bench's -d): 0 measures pp and tg on an empty cache, as llama-bench's pp512/tg128 do", DefaultValueFactory = _ => 0 };
        var reps = new Option<int>("--reps", "-r") { Description = "repetitions (medians are reported)", DefaultValueFactory = _ => 3 };
        var threads = new Option<int>("--threads", "-t") { Description = "cap on the threads the kernels use (0: one per core)", DefaultValueFactory = _ => 0 };
        var seed = new Option<int>("--seed") { Description = "seed of the random weights and prompt", DefaultValueFactory = _ => 0 };
        var cache = new Option<string>("--cache") { Description = "KV cache: paged (block pool, written in place) or contiguous (presents fed back as pasts)", DefaultValueFactory = _ => "paged" };
        cache.AcceptOnlyFromAmong("paged", "contiguous");
        var workload = new Option<int>("--workload") { Description = "instead of pp/tg: serve N requests (prompt and output lengths drawn from 16..512, seeded) with continuous batching over the paged cache; prints tokens/s and the pool's wasted slots", DefaultValueFactory = _ => 0 };
        var batch = new Option<int>("--batch", "-b") { Description = "sequences decoded together (paged cache): tg counts the tokens of all of them; above 1, one sequence's decode is timed in the same reps too (tg x1) and the speedup printed", DefaultValueFactory = _ => 1 };
        var target = new Option<string>("--target") { Description = "cpu (compiled C#; default), cuda (an NVIDIA GPU through ILGPU: KV cache and argmax on the device) or cuda-sim", DefaultValueFactory = _ => "cpu" };
        target.AcceptOnlyFromAmong("cpu", "cuda", "cuda-sim");
        var dtype = CommonOptions.CudaDType();
        var tp = CommonOptions.TensorParallel();
        var kernels = new Option<bool>("--kernels") { Description = "with --target cuda: also time single kernels (fp32 GEMM 4096³, attention B1 H16 S4096 D128) and report them under kernels" };
        var saveWeights = new Option<string?>("--save-weights")
        {
            Description = "write the seeded random weights (f32, checkpoint names) to this safetensors file and exit, for a peer (llama.cpp) to run the same model",
        };
        var set = CommonOptions.Set();
        var config = CommonOptions.Config();
        var json = CommonOptions.Json();
        var quantize = new Option<string?>("--quantize") { Description = "compress the random weights first: int8, int4 or w8a8 (round to nearest; as mc quantize does)" };
        quantize.AcceptOnlyFromAmong("int8", "int4", "w8a8");
        var groupSize = new Option<int?>("--group-size") { Description = "weights per scale with --quantize (default: per output channel for int8/w8a8, 64 for int4)" };
        var command = new Command("bench", "Benchmark the compiled CPU model with random weights: prompt processing (pp) and cached generation (tg) tokens/s.")
        {
            model, prompt, gen, depth, reps, threads, seed, cache, batch, workload, target, dtype, tp, kernels, saveWeights, quantize, groupSize, set, config, json,
        };
        command.SetAction(parse =>
        {
            int p = parse.GetValue(prompt), g = parse.GetValue(gen), r = parse.GetValue(reps);
            if (p < 1) throw new McException($"--prompt {p}: expected at least 1 token");
            if (g < 0) throw new McException($"--gen {g}: expected a number of tokens >= 0");
            if (r < 1) throw new McException($"--reps {r}: expected at least 1");
            int d = parse.GetValue(depth);
            if (d < 0) throw new McException($"--depth {d}: expected a number of tokens >= 0");
            if (d > 0 && parse.GetValue(target) != "cpu") throw new McException("--depth runs on the cpu target (the cuda decoder has no chunked prefill yet)");
            int t = parse.GetValue(threads);
            if (t < 0) throw new McException($"--threads {t}: expected a number >= 0");
            int threadCount = t == 0 ? Environment.ProcessorCount : t;
            int b = parse.GetValue(batch);
            if (b < 1) throw new McException($"--batch {b}: expected at least 1 sequence");
            var targetName = parse.GetValue(target)!;
            bool cuda = targetName != "cpu";
            CommonOptions.CheckCudaDType(parse.GetValue(dtype)!, targetName);
            // The cuda target keeps its own device-resident contiguous cache.
            bool paged = parse.GetValue(cache) == "paged" && !cuda;
            if (cuda && b > 1) throw new McException("--batch runs on the cpu target (its paged cache)");
            if (!paged && b > 1) throw new McException("--batch needs --cache paged");
            var loaded = CommonOptions.Load(parse.GetValue(model)!, parse.GetValue(config), parse.GetValue(set));
            int previousThreads = Runtime.Kernels.KernelThreading.MaxThreads;
            Runtime.Kernels.KernelThreading.MaxThreads = t;
            try
            {
            var graph = loaded.Graph;
            int weightSeed = parse.GetValue(seed);
            Func<string, float[]>? quantizedWeights = null;
            if (parse.GetValue(quantize) is { } scheme)
            {
                if (cuda) throw new McException("--quantize runs on the cpu target");
                // The random weights must exist before they can be quantized; the compiled model then loads the compressed ones.
                var dense = new Dictionary<string, float[]>(StringComparer.Ordinal);
                float[] Dense(string name) => dense.TryGetValue(name, out var d) ? d : dense[name] = SeededWeight(name, graph.Weights.First(w => w.Attrs.Str("name") == name).Type, weightSeed);
                var context = Backends.Quantization.ModelQuantizer.Apply(graph, new Backends.Quantization.QuantizeRequest(scheme, parse.GetValue(groupSize)), Dense, null);
                quantizedWeights = Backends.Quantization.QuantizedWeights.Floats(context.Weights, Dense);
            }
            new PassManager(cuda ? Backends.Cuda.CudaBackend.CachedPipeline : CpuBackend.CachedPipeline).Run(graph);
            if (paged && PagedKvCacheRewrite.Unsupported(graph) is { } why)
                throw new McException($"{graph.Name} cannot use a paged KV cache ({why}); use --cache contiguous");
            if (paged) new PassManager(["paged-kv-cache", "paged-logit-rows"]).Run(graph);
            var sizes = graph.Weights.GroupBy(w => w.Attrs.Str("name")).ToDictionary(x => x.Key, x => x.First().Type, StringComparer.Ordinal);
            if (parse.GetValue(saveWeights) is { } savePath)
            {
                var layout = sizes.Select(kv => (kv.Key, DType.F32, kv.Value.Shape.Select(d => d.Size).ToArray())).ToList();
                SafetensorsWriter.Write(savePath, layout, name =>
                {
                    var values = SeededWeight(name, sizes[name], weightSeed);
                    var bytes = new byte[checked(values.Length * sizeof(float))];
                    System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(bytes);
                    return bytes;
                });
                cli.Err.WriteLine($"wrote {layout.Count} seeded random weights (seed {weightSeed}) to {savePath}");
                return McApp.Ok;
            }
            int ranks = parse.GetValue(tp);
            if (ranks > 1 && !cuda) throw new McException($"--tp {ranks} runs on --target cuda or cuda-sim in mc bench");
            if (ranks > 1 && (parse.GetValue(quantize) is not null || parse.GetValue(workload) > 0 || parse.GetValue(kernels)))
                throw new McException($"--tp {ranks} benchmarks plain prefill and decode (no --quantize, --workload or --kernels)");
            Func<string, float[]>? seeded = null;
            if (cuda && !Runtime.Gguf.GgufFile.LooksLikeGguf(parse.GetValue(model)!))
            {
                // A large model's seeded weights take minutes one by one (7B: 6.7e9 draws): at the first weight the device
                // asks for (so after a missing GPU was reported), make them all on every core.
                var made = new Lazy<System.Collections.Concurrent.ConcurrentDictionary<string, float[]>>(() =>
                {
                    var all = new System.Collections.Concurrent.ConcurrentDictionary<string, float[]>(StringComparer.Ordinal);
                    Parallel.ForEach(sizes.OrderByDescending(kv => kv.Value.Shape.Aggregate(1L, (a, d) => a * d.Size)), kv => all[kv.Key] = SeededWeight(kv.Key, kv.Value, weightSeed));
                    return all;
                });
                seeded = name => made.Value[name];
            }
            if (ranks > 1)
                return ShardedCudaBench(cli, () => CommonOptions.Load(parse.GetValue(model)!, parse.GetValue(config), parse.GetValue(set)).Graph,
                    targetName, ranks, seeded ?? (name => SeededWeight(name, sizes[name], weightSeed)), p, g, r, weightSeed, parse.GetValue(json));
            var compileClock = Stopwatch.StartNew();
            using var device = cuda ? Backends.Cuda.GpuDevice.Open(simulate: targetName == "cuda-sim") : null;
            using var cudaModel = device is null ? null : new Backends.Cuda.CudaModel(graph, device, Backends.Cuda.CudaModel.ParseDType(parse.GetValue(dtype)!));
            ICompiledModel compiled = cudaModel ?? CpuBackend.Instantiate(CpuBackend.Compile(graph));
            var compileSeconds = compileClock.Elapsed.TotalSeconds;

            var random = new Random(weightSeed);
            long parameters = 0;
            // A .gguf file brings its weights (its Q8_0/Q4_0 blocks as they are): the run is the file's, as llama-bench's is.
            using var fileWeights = Runtime.Gguf.GgufFile.LooksLikeGguf(parse.GetValue(model)!) ? WeightStore.Open(parse.GetValue(model)!) : null;
            compiled.LoadWeights(name =>
            {
                var data = quantizedWeights?.Invoke(name) ?? fileWeights?.ReadFloat32(name) ?? seeded?.Invoke(name) ?? SeededWeight(name, sizes[name], weightSeed);
                parameters += data.LongLength;
                return data;
            });

            long vocab = graph.Outputs.First(o => o.Key == "logits").Value.Type[-1].Size;
            int requests = parse.GetValue(workload);
            if (requests < 0) throw new McException($"--workload {requests}: expected a number of requests >= 0");
            if (requests > 0)
            {
                if (!paged) throw new McException("--workload needs --cache paged");
                Workload(cli, (Runtime.Paged.IPagedCompiledModel)compiled, requests, Math.Max(b, 16), vocab, random, parse.GetValue(json));
                return McApp.Ok;
            }
            // Resident memory before the first forward (runtime, compiled code, packed weights) and its high-water mark
            // after the last (Linux: VmRSS / VmHWM).
            GC.Collect();
            long residentBefore = Process.GetCurrentProcess().WorkingSet64;
            var ppRates = new List<double>();
            var tgRates = new List<double>();
            var singleRates = new List<double>();   // --batch > 1: one sequence's decode in the same reps
            int launchesPerToken = 0, transfersPerToken = 0;
            using var profile = Runtime.Kernels.KernelProfiler.Begin();
            if (cudaModel is not null)
                (launchesPerToken, transfersPerToken) = CudaRates(graph, cudaModel, p, g, r, vocab, random, ppRates, tgRates);
            else if (paged)
                PagedRates((Runtime.Paged.IPagedCompiledModel)compiled, p, g, d, r, b, vocab, random, ppRates, tgRates, b > 1 && g > 0 ? singleRates : null, profile);
            else
                ContiguousRates(graph, compiled, p, g, d, r, vocab, random, ppRates, tgRates, profile);
            profile.Phase = null;
            // Per kernel kind and phase: time summed over the counted reps, and its share of the phase's wall time
            // (the rest is the generated code between kernels, buffer management, and for tg the decode loop itself).
            double ppSeconds = ppRates.Sum(rate => p / rate), tgSeconds = tgRates.Sum(rate => (double)b * g / rate);
            var kernelTimes = profile.Totals().Select(k => new
            {
                phase = k.Phase,
                kernel = k.Kernel,
                calls = k.Calls,
                total_ms = Math.Round(k.Seconds * 1e3, 3),
                percent = Math.Round(100 * k.Seconds / (k.Phase == "pp" ? ppSeconds : tgSeconds), 2),
            }).ToList();

            static double Median(List<double> v) { var s = v.Order().ToList(); return s.Count == 0 ? double.NaN : s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2; }
            static double Spread(List<double> v) => v.Count == 0 ? double.NaN : (v.Max() - v.Min()) / 2;
            double pp = Median(ppRates), tg = Median(tgRates);
            if (parse.GetValue(json))
                cli.Out.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
                {
                    ["model"] = graph.Name,
                    ["parameters"] = parameters,
                    ["prompt"] = p,
                    ["gen"] = g,
                    ["depth"] = d,
                    ["reps"] = r,
                    ["threads"] = threadCount,
                    ["cache"] = cuda ? "device" : paged ? "paged" : "contiguous",
                    ["batch"] = b,
                    ["pp_tokens_per_s"] = Math.Round(pp, 3),
                    ["pp_spread"] = Math.Round(Spread(ppRates), 3),
                    ["tg_tokens_per_s"] = g == 0 ? null : Math.Round(tg, 3),
                    ["tg_spread"] = g == 0 ? null : Math.Round(Spread(tgRates), 3),
                    ["tg_batch1_tokens_per_s"] = singleRates.Count == 0 ? null : Math.Round(Median(singleRates), 3),
                    ["batch_speedup"] = singleRates.Count == 0 ? null : Math.Round(tg / Median(singleRates), 3),
                    ["compile_seconds"] = Math.Round(compileSeconds, 3),
                    ["isa"] = Runtime.Kernels.Gemm.BestIsa.ToString(),   // the GEMM's micro-kernels on this machine and runtime settings
                    ["resident_bytes_before"] = residentBefore,
                    ["peak_resident_bytes"] = Process.GetCurrentProcess().PeakWorkingSet64,
                    ["target"] = targetName,
                    ["device"] = device?.Description,
                    ["launches_per_token"] = cuda ? launchesPerToken : null,
                    ["transfers_per_token"] = cuda ? transfersPerToken : null,
                    ["dtype"] = cuda ? parse.GetValue(dtype) : null,
                    // Linear weights read per decoded token over the token's time (the bandwidth the GEMVs reach, lower bound).
                    ["weight_gb_per_s"] = cudaModel is null || g == 0 ? null : Math.Round(cudaModel.LinearWeightBytes * tg / 1e9, 1),
                    ["ms_per_token"] = g == 0 ? null : Math.Round(1000 / tg, 3),
                    ["dynamic_shared_limit"] = device is not null && !device.IsSimulated && parse.GetValue(kernels) ? Backends.Cuda.KernelBench.SharedMemoryLimit(device) : null,
                    ["kernels"] = device is not null && parse.GetValue(kernels) ? (object)Backends.Cuda.KernelBench.Run(device) : kernelTimes,
                    // Per loaded kernel: what the PTX post-pass did, and whether local-memory traffic or mma.sync remain.
                    ["ptx"] = device?.Ptx.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToDictionary(kv => kv.Key, kv => new
                    {
                        slots_promoted = kv.Value.SlotsPromoted, slots_kept = kv.Value.SlotsKept,
                        local_accesses = Backends.Cuda.PtxPostPass.LocalAccesses(kv.Value.Ptx), mma_sync = kv.Value.Ptx.Contains("mma.sync", StringComparison.Ordinal),
                    }),
                }));
            else
            {
                string F(double v) => v.ToString("F2", CultureInfo.InvariantCulture);
                string At = d > 0 ? $" @ d{d}" : "";
                string tgName = (b > 1 ? $"tg{g} x{b}" : $"tg{g}") + At;
                cli.Out.WriteLine($"| model | params | threads | test | t/s |");
                cli.Out.WriteLine($"| --- | ---: | ---: | ---: | ---: |");
                cli.Out.WriteLine($"| {graph.Name} | {parameters / 1e6:F1} M | {threadCount} | pp{p}{At} | {F(pp)} ± {F(Spread(ppRates))} |");
                if (singleRates.Count > 0) cli.Out.WriteLine($"| {graph.Name} | {parameters / 1e6:F1} M | {threadCount} | tg{g} x1{At} | {F(Median(singleRates))} ± {F(Spread(singleRates))} |");
                if (g > 0) cli.Out.WriteLine($"| {graph.Name} | {parameters / 1e6:F1} M | {threadCount} | {tgName} | {F(tg)} ± {F(Spread(tgRates))} |");
                if (singleRates.Count > 0) cli.Out.WriteLine($"(batched decode: {b} sequences give {F(tg / Median(singleRates))}x the tokens/s of one, from the same reps)");
                cli.Out.WriteLine($"(medians of {r} reps after a warm-up, ± half the range; random weights, seed {parse.GetValue(seed)}; {(paged ? "paged" : "contiguous")} KV cache{(b > 1 ? $", {b} sequences per decode step" : "")}; compiled in {compileSeconds:F1} s; GEMM {Runtime.Kernels.Gemm.BestIsa})");
                cli.Out.WriteLine();
                cli.Out.WriteLine("| phase | kernel | calls | total ms | % of phase |");
                cli.Out.WriteLine("| --- | --- | ---: | ---: | ---: |");
                foreach (var k in kernelTimes)
                    cli.Out.WriteLine(FormattableString.Invariant($"| {k.phase} | {k.kernel} | {k.calls} | {k.total_ms:F1} | {k.percent:F1} |"));
                cli.Out.WriteLine($"(wall time per kernel kind summed over the {r} counted reps; the rest of each phase is code between kernels)");
            }
            return McApp.Ok;
            }
            finally { Runtime.Kernels.KernelThreading.MaxThreads = previousThreads; }
        });
        return command;
    }

    /// <summary>
    /// Per rep, each test on fresh sequences that first hold <paramref name="depth"/> untimed tokens: pp, one prefill of
    /// <paramref name="p"/> tokens; tg, <paramref name="g"/> steps that each decode one token of every one of
    /// <paramref name="batch"/> sequences in one forward (all their tokens count); with <paramref name="singleRates"/>,
    /// then the same decode of one sequence alone (its tokens/s, for the batch's speedup).
    /// </summary>
    private static void PagedRates(Runtime.Paged.IPagedCompiledModel model, int p, int g, int depth, int reps, int batch, long vocab, Random random,
        List<double> ppRates, List<double> tgRates, List<double>? singleRates, Runtime.Kernels.KernelProfiler.Profile profile)
    {
        var engine = new Runtime.Paged.PagedEngine(model, Runtime.Paged.PagedEngine.PoolFor(model, (batch + 1) * (depth + Math.Max(p, g) + 16)),
            maxTokensPerStep: Math.Max(Math.Max(p, depth), batch), maxSequencesPerStep: batch);
        var logits = new float[batch * vocab];
        long[] RandomIds(int n) => Enumerable.Range(0, n).Select(_ => random.NextInt64(vocab)).ToArray();
        // Sequences holding `depth` random tokens, their last logits in `logits` (an empty one gets a random first token).
        Runtime.Paged.KvSequence[] Fresh(int count, int room)
        {
            var sequences = Enumerable.Range(0, count).Select(_ => engine.Pool.CreateSequence(depth + room + 1)).ToArray();
            for (int s = 0; s < count && depth > 0; s++)
                engine.Step(sequences.AsSpan(s, 1), [RandomIds(depth)], logits.AsSpan(s * (int)vocab));
            return sequences;
        }
        // One token per sequence and step, each the argmax of its last logits (a random one on an empty cache).
        void Decode(Runtime.Paged.KvSequence[] sequences, int steps)
        {
            var feeds = sequences.Select(_ => (ReadOnlyMemory<long>)new long[1]).ToList();
            for (int step = 0; step < steps; step++)
            {
                for (int s = 0; s < sequences.Length; s++)
                    feeds[s] = new[] { step == 0 && depth == 0 ? random.NextInt64(vocab) : GreedyDecoder.ArgMax(logits.AsSpan(s * (int)vocab, (int)vocab), []) };
                engine.Step(sequences, feeds, logits);
            }
        }
        static void Dispose(Runtime.Paged.KvSequence[] sequences) { foreach (var s in sequences) s.Dispose(); }
        for (int rep = -1; rep < reps; rep++)
        {
            bool warmUp = rep < 0;
            var prompt = Fresh(1, p);
            try
            {
                var ids = RandomIds(p);
                profile.Phase = warmUp ? null : "pp";
                var clock = Stopwatch.StartNew();
                engine.Step(prompt, [ids], logits);
                if (!warmUp) ppRates.Add(p / clock.Elapsed.TotalSeconds);
            }
            finally { profile.Phase = null; Dispose(prompt); }
            if (g == 0) continue;
            int steps = warmUp ? Math.Min(g, 4) : g;
            var sequences = Fresh(batch, g);
            try
            {
                profile.Phase = warmUp ? null : "tg";
                var tgClock = Stopwatch.StartNew();
                Decode(sequences, steps);
                if (!warmUp) tgRates.Add((double)batch * g / tgClock.Elapsed.TotalSeconds);
            }
            finally { profile.Phase = null; Dispose(sequences); }
            if (singleRates is null) continue;
            // The same decode with one sequence, in the same rep, so both rates see the same machine.
            var one = Fresh(1, g);
            try
            {
                var singleClock = Stopwatch.StartNew();
                Decode(one, steps);
                if (!warmUp) singleRates.Add(g / singleClock.Elapsed.TotalSeconds);
            }
            finally { Dispose(one); }
        }
    }

    /// <summary>
    /// Per rep on the GPU, each test from an empty cache: pp, one prefill of <paramref name="p"/> tokens; tg,
    /// <paramref name="g"/> one-token device-side greedy steps (the first starts the cache). Returns the launches and host↔device copies of the last step.
    /// </summary>
    private static (int Launches, int Transfers) CudaRates(Graph graph, Backends.Cuda.CudaModel model, int p, int g, int r, long vocab, Random random,
        List<double> ppRates, List<double> tgRates)
    {
        var decoder = new Backends.Cuda.CudaCachedDecoder(graph, model);
        int launches = 0, transfers = 0;
        long[] RandomIds(int n) => Enumerable.Range(0, n).Select(_ => random.NextInt64(vocab)).ToArray();
        for (int rep = -1; rep < r; rep++)
        {
            var steps = new List<TimeSpan>();
            decoder.Generate(RandomIds(p), 1, [], stepTime: (_, t) => steps.Add(t));
            if (rep >= 0) ppRates.Add(p / steps[0].TotalSeconds);
            if (g == 0) continue;
            steps.Clear();
            decoder.Generate(RandomIds(1), rep < 0 ? Math.Min(g, 4) : g, [], stepTime: (_, t) => steps.Add(t));
            launches = decoder.LastStepLaunches;
            transfers = decoder.LastStepTransfers;
            if (rep >= 0) tgRates.Add(g / steps.Sum(t => t.TotalSeconds));
        }
        return (launches, transfers);
    }

    /// <summary>
    /// <paramref name="count"/> requests, prompt and output lengths uniform in 16..512, served <paramref name="concurrent"/>
    /// at a time (continuous batching, greedy). Waste: over every step, pool slots allocated but holding no token, as a
    /// fraction of the slots allocated.
    /// </summary>
    private static void Workload(CliContext cli, Runtime.Paged.IPagedCompiledModel model, int count, int concurrent, long vocab, Random random, bool json)
    {
        var requests = Enumerable.Range(0, count).Select(_ => new Runtime.Paged.GenerationRequest(
            Enumerable.Range(0, random.Next(16, 513)).Select(_ => random.NextInt64(vocab)).ToArray(), random.Next(16, 513))).ToList();
        var engine = new Runtime.Paged.PagedEngine(model, Runtime.Paged.PagedEngine.PoolFor(model, concurrent * 1040),
            maxTokensPerStep: concurrent * 512, maxSequencesPerStep: concurrent);
        long held = 0, used = 0;
        var clock = Stopwatch.StartNew();
        var produced = engine.Generate(requests, (_, logits) => GreedyDecoder.ArgMax(logits, []), concurrent, afterStep: () =>
        {
            held += (long)engine.Pool.BlocksInUse * engine.Pool.BlockSize;
            used += engine.ActiveTokens;
        });
        double seconds = clock.Elapsed.TotalSeconds;
        long generated = produced.Sum(p => (long)p.Length), prompted = requests.Sum(r => (long)r.Prompt.Length);
        double wasted = held == 0 ? 0 : (double)(held - used) / held;
        if (json)
            cli.Out.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["model"] = model.Name,
                ["workload_requests"] = count,
                ["concurrent"] = concurrent,
                ["prompt_tokens"] = prompted,
                ["generated_tokens"] = generated,
                ["seconds"] = Math.Round(seconds, 3),
                ["tokens_per_s"] = Math.Round((prompted + generated) / seconds, 3),
                ["block_size"] = engine.Pool.BlockSize,
                ["wasted_fraction"] = Math.Round(wasted, 5),
            }));
        else
            cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"workload: {count} requests (lengths 16..512), {concurrent} at a time: {prompted} prompt + {generated} generated tokens in {seconds:F1} s " +
                $"({(prompted + generated) / seconds:F1} tokens/s); KV pool waste {wasted:P2} of allocated slots (blocks of {engine.Pool.BlockSize})"));
    }

    /// <summary>
    /// Per rep, each test from an empty cache that first takes <paramref name="depth"/> untimed tokens: pp, one prefill of
    /// <paramref name="p"/> tokens; tg, <paramref name="g"/> one-token steps feeding the presents back as pasts.
    /// </summary>
    private static void ContiguousRates(Graph graph, ICompiledModel compiled, int p, int g, int depth, int r, long vocab, Random random,
        List<double> ppRates, List<double> tgRates, Runtime.Kernels.KernelProfiler.Profile profile)
    {
        var input = KvCacheRewrite.GeneratedInput(graph) ?? throw new McException($"{graph.Name}: no input_ids to feed");
        var pasts = graph.Inputs.Where(i => i.Attrs.Str("name").StartsWith("past.", StringComparison.Ordinal)).ToList();
        if (pasts.Count == 0) throw new McException($"{graph.Name}: the kv-cache pass found nothing to cache");
        var others = graph.Inputs.Where(i => i != input && !pasts.Contains(i)).Select(i => i.Attrs.Str("name")).ToList();
        if (others.Count > 0) throw new McException($"mc bench feeds only input_ids and the KV cache; {graph.Name} also takes {string.Join(", ", others)}");
        var inputName = input.Attrs.Str("name");
        long[] RandomIds(int n) => Enumerable.Range(0, n).Select(_ => random.NextInt64(vocab)).ToArray();
        // Feeds with an empty cache, or with one holding `depth` random tokens (then `results` holds that run's outputs).
        Dictionary<string, HostTensor> Fresh(out IReadOnlyDictionary<string, HostTensor>? results)
        {
            var feeds = pasts.ToDictionary(x => x.Attrs.Str("name"), x => HostTensor.FromFloats(
                x.Type.Shape.Select((d, i) => i == 0 ? 1 : i == 1 ? 0 : d.Size).ToArray(), [], x.Type.DType), StringComparer.Ordinal);
            results = null;
            if (depth == 0) return feeds;
            feeds[inputName] = HostTensor.FromInts([1, depth], RandomIds(depth));
            results = compiled.Run(feeds);
            FeedBack(feeds, results);
            return feeds;
        }
        void FeedBack(Dictionary<string, HostTensor> feeds, IReadOnlyDictionary<string, HostTensor> results)
        {
            foreach (var x in pasts)
            {
                var name = x.Attrs.Str("name");
                feeds[name] = results["present" + name["past".Length..]];
            }
        }
        // Rep -1 is a warm-up (JIT, pools, page faults), as llama-bench does; it is not counted.
        for (int rep = -1; rep < r; rep++)
        {
            bool warmUp = rep < 0;
            var feeds = Fresh(out _);
            feeds[inputName] = HostTensor.FromInts([1, p], RandomIds(p));
            profile.Phase = warmUp ? null : "pp";
            var clock = Stopwatch.StartNew();
            compiled.Run(feeds);
            if (!warmUp) ppRates.Add(p / clock.Elapsed.TotalSeconds);
            profile.Phase = null;
            if (g == 0) continue;
            feeds = Fresh(out var results);
            profile.Phase = warmUp ? null : "tg";
            clock.Restart();
            for (int step = 0; step < (warmUp ? Math.Min(g, 4) : g); step++)
            {
                long next;
                if (results is null) next = random.NextInt64(vocab);
                else
                {
                    var logits = results["logits"].Floats!;
                    next = GreedyDecoder.ArgMax(logits.AsSpan((int)(logits.Length - vocab)), []);
                    FeedBack(feeds, results);
                }
                feeds[inputName] = HostTensor.FromInts([1, 1], [next]);
                results = compiled.Run(feeds);
            }
            if (!warmUp) tgRates.Add(g / clock.Elapsed.TotalSeconds);
            profile.Phase = null;
        }
    }

    /// <summary>
    /// A weight's seeded random values, uniform in ±0.05 (integer tensors zero): a function of (name, seed) only, so
    /// <c>--save-weights</c> and the benchmark see the same numbers whatever order the weights are read in.
    /// </summary>
    internal static float[] SeededWeight(string name, TensorType type, int seed)
    {
        long count = type.Shape.Aggregate(1L, (a, d) => a * d.Size);
        var data = new float[count];
        if (!type.DType.IsFloat()) return data;
        uint hash = 2166136261;   // FNV-1a: stable across runs and platforms, unlike string.GetHashCode
        foreach (char c in name) hash = (hash ^ c) * 16777619;
        var random = new Random(unchecked((int)hash ^ seed));
        for (long i = 0; i < count; i++) data[i] = (float)((random.NextDouble() * 2 - 1) * 0.05);
        return data;
    }
}
