using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using ModelCompiler.Backends.Cuda;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Cli;

internal static partial class BenchCommand
{
    /// <summary>
    /// <c>mc bench --target cuda|cuda-sim --tp N</c>: the model sharded over N devices (one rank per GPU, NCCL between
    /// them), then per rep a prefill of <paramref name="p"/> tokens and <paramref name="g"/> greedy tokens from an empty
    /// cache (as the single-device bench), every rank in lockstep, timed on rank 0. On GPUs it also measures NCCL's own
    /// all-reduce in the same run (one thread, ncclGroupStart/End, float32) at the decode step's size and larger, and
    /// estimates the all-reduce time per token as (all-reduces per forward) × (NCCL's time for one of the hidden size).
    /// </summary>
    private static int ShardedCudaBench(CliContext cli, Func<Graph> elaborate, string target, int ranks, Func<string, float[]> weights,
        int p, int g, int reps, int seed, bool json)
    {
        var compileClock = Stopwatch.StartNew();
        Backends.TensorParallel.ShardGraphs(elaborate, ranks);   // the divisibility error before any device is opened
        using var group = CudaRankGroup.Open(ranks, simulate: target == CudaBackend.SimulatedTarget);
        long parameters = 0;
        using var model = CudaShardedModel.Create(group, elaborate, CudaBackend.CachedPipeline, name =>
        {
            var data = weights(name);
            Interlocked.Add(ref parameters, data.LongLength);
            return data;
        });
        var loadSeconds = compileClock.Elapsed.TotalSeconds;
        var graph = model.Graphs[0];
        var logits = graph.Outputs.First(o => o.Key == "logits").Value.Type;
        long vocab = logits[-1].Size;
        int allReduces = graph.Nodes.Count(n => n.Op == OpKind.AllReduce), allGathers = graph.Nodes.Count(n => n.Op == OpKind.AllGather);
        long hidden = graph.Nodes.Where(n => n.Op == OpKind.AllReduce).Select(n => n.Type[-1].Size).DefaultIfEmpty(0).Max();

        var random = new Random(seed);
        var ppRates = new List<double>();
        var tgRates = new List<double>();
        // As the single-device bench measures: each test on a fresh cache (pp: one prefill of p tokens; tg: g tokens from empty).
        long[] RandomIds(int n) => Enumerable.Range(0, n).Select(_ => random.NextInt64(vocab)).ToArray();
        for (int rep = -1; rep < reps; rep++)
        {
            var steps = new List<TimeSpan>();
            model.Generate(RandomIds(p), 1, [], stepTime: (_, t) => steps.Add(t));
            if (rep >= 0) ppRates.Add(p / steps[0].TotalSeconds);
            if (g == 0) continue;
            steps.Clear();
            model.Generate(RandomIds(1), rep < 0 ? Math.Min(g, 4) : g, [], stepTime: (_, t) => steps.Add(t));
            if (rep >= 0) tgRates.Add(g / steps.Sum(t => t.TotalSeconds));
        }

        // NCCL's own all-reduce, same process and GPUs: the decode step's size, the prefill's, and sizes for bandwidth.
        var sweep = group.Nccl is null ? [] : group.AllReduceSweep(
            new[] { hidden, hidden * p, 1L << 20, 1L << 24, 1L << 26 }.Where(c => c > 0).Distinct(), iterations: 50);
        double? decodeAllReduceUs = sweep.Count > 0 ? sweep[0].Microseconds : null;

        static double Median(List<double> v) { var s = v.Order().ToList(); return s.Count == 0 ? double.NaN : s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2; }
        static double Spread(List<double> v) => v.Count == 0 ? double.NaN : (v.Max() - v.Min()) / 2;
        double pp = Median(ppRates), tg = Median(tgRates);
        if (json)
            cli.Out.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["model"] = graph.Name,
                ["parameters"] = parameters,   // the whole model's (each rank keeps 1/N of the sharded weights)
                ["prompt"] = p,
                ["gen"] = g,
                ["reps"] = reps,
                ["tp"] = ranks,
                ["target"] = target,
                ["device"] = group.Description,
                ["cache"] = "device",
                ["pp_tokens_per_s"] = Math.Round(pp, 3),
                ["pp_spread"] = Math.Round(Spread(ppRates), 3),
                ["tg_tokens_per_s"] = g == 0 ? null : Math.Round(tg, 3),
                ["tg_spread"] = g == 0 ? null : Math.Round(Spread(tgRates), 3),
                ["ms_per_token"] = g == 0 ? null : Math.Round(1000 / tg, 3),
                ["load_seconds"] = Math.Round(loadSeconds, 3),
                ["launches_per_token"] = model.LastStepLaunches,
                ["all_reduces_per_token"] = allReduces,
                ["all_gathers_per_token"] = allGathers,
                ["all_reduce_bytes"] = hidden * sizeof(float),
                ["all_reduce_ms_per_token_estimate"] = decodeAllReduceUs is double us ? Math.Round(allReduces * us / 1000, 4) : null,
                ["nccl_all_reduce"] = sweep.Select(s => new { bytes = s.Bytes, us = Math.Round(s.Microseconds, 2), bus_gb_per_s = Math.Round(s.BusGBps, 2) }).ToList(),
            }));
        else
        {
            string F(double v) => v.ToString("F2", CultureInfo.InvariantCulture);
            cli.Out.WriteLine("| model | tp | test | t/s |");
            cli.Out.WriteLine("| --- | ---: | ---: | ---: |");
            cli.Out.WriteLine($"| {graph.Name} | {ranks} | pp{p} | {F(pp)} ± {F(Spread(ppRates))} |");
            if (g > 0) cli.Out.WriteLine($"| {graph.Name} | {ranks} | tg{g} | {F(tg)} ± {F(Spread(tgRates))} ({F(1000 / tg)} ms/token) |");
            cli.Out.WriteLine($"(medians of {reps} reps after a warm-up; random weights, seed {seed}; {group.Description}; {allReduces} all-reduces of {hidden * sizeof(float)} bytes and {allGathers} all-gathers per token)");
            foreach (var s in sweep)
                cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"NCCL all-reduce {s.Bytes} bytes: {s.Microseconds:F1} µs, bus {s.BusGBps:F1} GB/s"));
            if (decodeAllReduceUs is double u)
                cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"all-reduce time per token (estimate: {allReduces} × {u:F1} µs): {allReduces * u / 1000:F3} ms"));
        }
        return McApp.Ok;
    }
}
