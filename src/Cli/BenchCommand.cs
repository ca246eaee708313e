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
/// and kv-cache pipelines and seeded random weights (no checkpoint), then per rep one prefill of P tokens and G cached
/// decode steps; prints prompt tokens/s (pp) and generated tokens/s (tg) as medians over the reps with their spread,
/// like llama.cpp's llama-bench.
/// </summary>
internal static class BenchCommand
{
    /// <summary>Uniform in ±0.05 for float tensors, zeros for integer ones.</summary>
    private static float[] RandomWeight(Random random, TensorType type)
    {
        long count = type.Shape.Aggregate(1L, (a, d) => a * d.Size);
        var data = new float[count];
        if (type.DType.IsFloat())
            for (long i = 0; i < count; i++) data[i] = (float)((random.NextDouble() * 2 - 1) * 0.05);
        return data;
    }

    public static Command Create(CliContext cli)
    {
        var model = CommonOptions.Model();
        var prompt = new Option<int>("--prompt", "-p") { Description = "prompt tokens of the prefill (pp)", DefaultValueFactory = _ => 512 };
        var gen = new Option<int>("--gen", "-n") { Description = "tokens generated one at a time through the KV cache (tg)", DefaultValueFactory = _ => 128 };
        var reps = new Option<int>("--reps", "-r") { Description = "repetitions (medians are reported)", DefaultValueFactory = _ => 3 };
        var threads = new Option<int>("--threads", "-t") { Description = "cap on the threads the kernels use (0: one per core)", DefaultValueFactory = _ => 0 };
        var seed = new Option<int>("--seed") { Description = "seed of the random weights and prompt", DefaultValueFactory = _ => 0 };
        var set = CommonOptions.Set();
        var config = CommonOptions.Config();
        var json = CommonOptions.Json();
        var quantize = new Option<string?>("--quantize") { Description = "compress the random weights first: int8, int4 or w8a8 (round to nearest; as mc quantize does)" };
        quantize.AcceptOnlyFromAmong("int8", "int4", "w8a8");
        var groupSize = new Option<int?>("--group-size") { Description = "weights per scale with --quantize (default: per output channel for int8/w8a8, 64 for int4)" };
        var command = new Command("bench", "Benchmark the compiled CPU model with random weights: prompt processing (pp) and cached generation (tg) tokens/s.")
        {
            model, prompt, gen, reps, threads, seed, set, config, json, quantize, groupSize,
        };
        command.SetAction(parse =>
        {
            int p = parse.GetValue(prompt), g = parse.GetValue(gen), r = parse.GetValue(reps);
            if (p < 1) throw new McException($"--prompt {p}: expected at least 1 token");
            if (g < 0) throw new McException($"--gen {g}: expected a number of tokens >= 0");
            if (r < 1) throw new McException($"--reps {r}: expected at least 1");
            int t = parse.GetValue(threads);
            if (t < 0) throw new McException($"--threads {t}: expected a number >= 0");
            int threadCount = t == 0 ? Environment.ProcessorCount : t;
            var loaded = CommonOptions.Load(parse.GetValue(model)!, parse.GetValue(config), parse.GetValue(set));
            int previousThreads = Runtime.Kernels.KernelThreading.MaxThreads;
            Runtime.Kernels.KernelThreading.MaxThreads = t;
            try
            {
            var graph = loaded.Graph;
            var random = new Random(parse.GetValue(seed));
            Func<string, float[]>? quantizedWeights = null;
            if (parse.GetValue(quantize) is { } scheme)
            {
                // The random weights must exist before they can be quantized; the compiled model then loads the compressed ones.
                var dense = new Dictionary<string, float[]>(StringComparer.Ordinal);
                float[] Dense(string name) => dense.TryGetValue(name, out var d) ? d : dense[name] = RandomWeight(random, graph.Weights.First(w => w.Attrs.Str("name") == name).Type);
                var context = Backends.Quantization.ModelQuantizer.Apply(graph, new Backends.Quantization.QuantizeRequest(scheme, parse.GetValue(groupSize)), Dense, null);
                quantizedWeights = Backends.Quantization.QuantizedWeights.Floats(context.Weights, Dense);
            }
            new PassManager(CpuBackend.CachedPipeline).Run(graph);
            var compileClock = Stopwatch.StartNew();
            var compiled = CpuBackend.Instantiate(CpuBackend.Compile(graph));
            var compileSeconds = compileClock.Elapsed.TotalSeconds;

            var sizes = graph.Weights.GroupBy(w => w.Attrs.Str("name")).ToDictionary(x => x.Key, x => x.First().Type, StringComparer.Ordinal);
            long parameters = 0;
            compiled.LoadWeights(name =>
            {
                var type = sizes[name];
                long count = type.Shape.Aggregate(1L, (a, d) => a * d.Size);
                parameters += count;
                return quantizedWeights?.Invoke(name) ?? RandomWeight(random, type);
            });

            var input = KvCacheRewrite.GeneratedInput(graph) ?? throw new McException($"{graph.Name}: no input_ids to feed");
            var pasts = graph.Inputs.Where(i => i.Attrs.Str("name").StartsWith("past.", StringComparison.Ordinal)).ToList();
            if (pasts.Count == 0) throw new McException($"{graph.Name}: the kv-cache pass found nothing to cache");
            var others = graph.Inputs.Where(i => i != input && !pasts.Contains(i)).Select(i => i.Attrs.Str("name")).ToList();
            if (others.Count > 0) throw new McException($"mc bench feeds only input_ids and the KV cache; {graph.Name} also takes {string.Join(", ", others)}");
            long vocab = graph.Outputs.First(o => o.Key == "logits").Value.Type[-1].Size;
            var inputName = input.Attrs.Str("name");

            var ppRates = new List<double>();
            var tgRates = new List<double>();
            // Rep -1 is a warm-up (JIT, pools, page faults), as llama-bench does; it is not counted.
            for (int rep = -1; rep < r; rep++)
            {
                bool warmUp = rep < 0;
                var ids = Enumerable.Range(0, p).Select(_ => (long)random.NextInt64(vocab)).ToArray();
                var feeds = pasts.ToDictionary(x => x.Attrs.Str("name"), x => HostTensor.FromFloats(
                    x.Type.Shape.Select((d, i) => i == 0 ? 1 : i == 1 ? 0 : d.Size).ToArray(), [], x.Type.DType), StringComparer.Ordinal);
                feeds[inputName] = HostTensor.FromInts([1, p], ids);
                var clock = Stopwatch.StartNew();
                var results = compiled.Run(feeds);
                if (!warmUp) ppRates.Add(p / clock.Elapsed.TotalSeconds);
                if (g == 0) continue;
                clock.Restart();
                for (int step = 0; step < (warmUp ? Math.Min(g, 4) : g); step++)
                {
                    var logits = results["logits"].Floats!;
                    long next = GreedyDecoder.ArgMax(logits.AsSpan((int)(logits.Length - vocab)), []);
                    foreach (var x in pasts)
                    {
                        var name = x.Attrs.Str("name");
                        feeds[name] = results["present" + name["past".Length..]];
                    }
                    feeds[inputName] = HostTensor.FromInts([1, 1], [next]);
                    results = compiled.Run(feeds);
                }
                if (!warmUp) tgRates.Add(g / clock.Elapsed.TotalSeconds);
            }

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
                    ["reps"] = r,
                    ["threads"] = threadCount,
                    ["pp_tokens_per_s"] = Math.Round(pp, 3),
                    ["pp_spread"] = Math.Round(Spread(ppRates), 3),
                    ["tg_tokens_per_s"] = g == 0 ? null : Math.Round(tg, 3),
                    ["tg_spread"] = g == 0 ? null : Math.Round(Spread(tgRates), 3),
                    ["compile_seconds"] = Math.Round(compileSeconds, 3),
                    ["kernels"] = Array.Empty<object>(),   // per-kernel timing is not measured yet
                }));
            else
            {
                string F(double v) => v.ToString("F2", CultureInfo.InvariantCulture);
                cli.Out.WriteLine($"| model | params | threads | test | t/s |");
                cli.Out.WriteLine($"| --- | ---: | ---: | ---: | ---: |");
                cli.Out.WriteLine($"| {graph.Name} | {parameters / 1e6:F1} M | {threadCount} | pp{p} | {F(pp)} ± {F(Spread(ppRates))} |");
                if (g > 0) cli.Out.WriteLine($"| {graph.Name} | {parameters / 1e6:F1} M | {threadCount} | tg{g} | {F(tg)} ± {F(Spread(tgRates))} |");
                cli.Out.WriteLine($"(medians of {r} reps after a warm-up, ± half the range; random weights, seed {parse.GetValue(seed)}; compiled in {compileSeconds:F1} s)");
            }
            return McApp.Ok;
            }
            finally { Runtime.Kernels.KernelThreading.MaxThreads = previousThreads; }
        });
        return command;
    }
}
