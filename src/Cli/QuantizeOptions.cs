using System.CommandLine;
using System.Text.Json.Nodes;
using ModelCompiler.Backends.Quantization;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Tokenizers;
using Spectre.Console;

namespace ModelCompiler.Cli;

/// <summary>The quantization and pruning options, shared so that they mean the same on mc compile and mc quantize.</summary>
internal sealed class QuantizeOptions
{
    public Option<string?> Quantize { get; } = new("--quantize")
    {
        Description = "compress the linears: int8 (weight-only, per output channel), int4 (round to nearest, per group), awq-int4 (activation-aware), " +
                      "w8a8 (int8 weights and per-token int8 activations), smoothquant (W8A8 after migrating activation outliers into the weights)",
    };

    public Option<int?> GroupSize { get; } = new("--group-size") { Description = "weights per scale: 32, 64, 128 ... (default: per output channel for int8/w8a8, 64 for int4/awq-int4)" };

    public Option<string?> Prune { get; } = new("--prune") { Description = "prune before quantizing: magnitude:0.5, wanda:0.5 or wanda:2:4 (every linear but the LM head; 2:4 without --quantize is stored compressed: kept values + 2-bit positions)" };

    public Option<string?> Calibration { get; } = new("--calibration") { Description = "calibration data for awq-int4, smoothquant and wanda: a text file (the model's tokenizer) or a .safetensors of token ids" };

    public Option<int> CalibrationWindows { get; } = new("--calibration-windows") { Description = "how many windows of the calibration tokens to run (default 64)", DefaultValueFactory = _ => 64 };

    public Option<int> CalibrationLength { get; } = new("--calibration-length") { Description = "tokens per calibration window (default 256, the perplexity window)", DefaultValueFactory = _ => 256 };

    public Option<string> CalibrationTarget { get; } = new("--calibration-target") { Description = "where calibration runs: cpu (default) or interpreter", DefaultValueFactory = _ => "cpu" };

    public Option<double> SmoothAlpha { get; } = new("--smooth-alpha") { Description = "SmoothQuant's migration strength α in [0, 1] (default 0.5)", DefaultValueFactory = _ => 0.5 };

    public QuantizeOptions() => CalibrationTarget.AcceptOnlyFromAmong("cpu", "interpreter");

    public IEnumerable<Option> All => [Quantize, GroupSize, Prune, Calibration, CalibrationWindows, CalibrationLength, CalibrationTarget, SmoothAlpha];

    public bool Requested(ParseResult parse) => parse.GetValue(Quantize) is not null || parse.GetValue(Prune) is not null;

    /// <summary>
    /// Calibrates if the request needs it, runs the passes on <paramref name="loaded"/>'s graph and writes the quantized
    /// folder; returns the rewritten graph (fresh from the folder, as every command will load it) and a one-line summary.
    /// </summary>
    public (Graph Graph, string Summary) Run(ParseResult parse, CliContext cli, string modelArg, LoadedModel loaded, string weightsPath,
        string? configPath, string[]? sets, string outDir)
    {
        var prune = parse.GetValue(Prune);
        var request = new QuantizeRequest(parse.GetValue(Quantize), parse.GetValue(GroupSize), parse.GetValue(SmoothAlpha),
            prune is null ? null : PruningSpec.Parse(prune));
        request.Validate();
        using var store = WeightStore.Open(weightsPath);
        Backends.WeightBinding.Validate(loaded.Graph, store);

        CalibrationStats? stats = null;
        JsonObject? calibration = null;
        var calibrationPath = parse.GetValue(Calibration);
        if (request.NeedsCalibration && calibrationPath is null)
            throw new McException($"{(request.Prune?.Method == "wanda" ? "--prune wanda" : $"--quantize {request.Scheme}")} needs --calibration (a text file or a .safetensors of token ids)");
        if (calibrationPath is not null && request.NeedsCalibration)
        {
            int windows = parse.GetValue(CalibrationWindows), length = parse.GetValue(CalibrationLength);
            if (windows <= 0 || length <= 1) throw new McException("--calibration-windows must be positive and --calibration-length at least 2");
            long vocab = loaded.Graph.TryGetHyperparameter<long>("vocab_size", out var v) ? v
                : loaded.Graph.Nodes.FirstOrDefault(n => n.Op == OpKind.Embedding)?.Input(1).Type[0].Size
                  ?? throw new McException("calibration needs a model with a token embedding");
            var tokenizerFolder = Directory.Exists(weightsPath) ? weightsPath : Directory.Exists(modelArg) ? modelArg : null;
            var ids = Backends.Quantization.Calibration.ReadTokens(calibrationPath,
                tokenizerFolder is null ? null : () => TokenizerLoader.Load(tokenizerFolder), vocab);
            var chunks = Backends.Quantization.Calibration.Windows(ids, windows, length);
            var fresh = CommonOptions.Load(modelArg, configPath, sets).Graph;
            bool interpreter = parse.GetValue(CalibrationTarget) == "interpreter";
            stats = WithProgress(cli, $"calibrating on {chunks.Count} windows", chunks.Count,
                report => Backends.Quantization.Calibration.Collect(fresh, store.ReadFloat32, chunks, interpreter, gram: request.NeedsGram, progress: report));
            calibration = new JsonObject
            {
                ["file"] = Path.GetFileName(calibrationPath), ["windows"] = chunks.Count, ["window_length"] = length,
                ["tokens"] = chunks.Sum(c => c.Length), ["target"] = interpreter ? "interpreter" : "cpu",
            };
        }

        var graph = loaded.Graph;
        var context = ModelQuantizer.Apply(graph, request, store.ReadFloat32, stats);
        var hfFolder = HuggingFaceImport.IsModelFolder(modelArg) ? modelArg : HuggingFaceImport.IsModelFolder(weightsPath) ? weightsPath : null;
        var source = HuggingFaceImport.IsModelFolder(modelArg)
            ? new QuantizedModelSource("hf", null, null, CommonOptions.ParseSets(sets))
            : new QuantizedModelSource("arch", Path.GetFullPath(modelArg), configPath is null ? null : Path.GetFullPath(configPath), CommonOptions.ParseSets(sets));
        long before = new FileInfo(Directory.Exists(weightsPath) ? Path.Combine(weightsPath, WeightStore.SingleFileName) : weightsPath) is { Exists: true } f ? f.Length : 0;
        long bytes = QuantizedFolder.Write(outDir, graph, context, request, store, source, hfFolder, calibration);
        var reloaded = CommonOptions.Load(outDir, null, null).Graph;
        string what = string.Join(" + ", new[] { request.Prune?.ToString(), request.Scheme }.Where(s => s is not null));
        string summary = $"{graph.Name}: {what}, {context.Entries.Count} linears {(request.Scheme is null ? "compressed" : "quantized")}, {context.Weights.Written.Count(kv => store.Contains(kv.Key) && graph.Weights.Any(w => w.Attrs.Str("name") == kv.Key))} float tensors rewritten; " +
                         $"wrote {Path.Combine(outDir, WeightStore.SingleFileName)} ({bytes / 1e6:F2} MB{(before > 0 ? $", was {before / 1e6:F2} MB" : "")}) and {QuantizedFolder.ManifestName}";
        return (reloaded, summary);
    }

    /// <summary>A Spectre progress bar on stderr when a person is watching; silent in scripts and tests.</summary>
    private static T WithProgress<T>(CliContext cli, string title, int total, Func<Action<int>, T> work)
    {
        if (!ReferenceEquals(cli.Err, Console.Error) || Console.IsErrorRedirected) return work(_ => { });
        T result = default!;
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        console.Progress().Start(ctx =>
        {
            var task = ctx.AddTask(title, maxValue: total);
            result = work(done => task.Value = done);
        });
        return result;
    }
}
