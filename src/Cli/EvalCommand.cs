using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using ModelCompiler.Backends;
using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using Spectre.Console;

namespace ModelCompiler.Cli;

/// <summary>
/// <c>mc eval model.arch --weights W --inputs in.safetensors --out out.safetensors [--generate N]</c>.
/// The contract other tools rely on: inputs by name (input_ids, token_type_ids, decoder_input_ids, and
/// attention_mask for padded batches: <see cref="AttentionMaskRows"/>),
/// <c>logits</c> written as float32 in Hugging Face's shape, and with --generate, <c>greedy_ids</c>
/// (int64 [1, seq+N], or the decoder's [1, 1+N] for encoder-decoders) with EOS masked.
/// </summary>
internal static class EvalCommand
{
    public static Command Create(CliContext cli)
    {
        var model = CommonOptions.Model();
        var weights = new Option<string?>("--weights") { Description = "a Hugging Face model folder (config.json + safetensors) or a .safetensors file (default: the model, when it is a folder)" };
        var inputs = new Option<string>("--inputs") { Description = "a .safetensors file holding input_ids (int64 [batch, seq]) and any other inputs the model declares; optionally attention_mask ([batch, seq] of 1 for tokens, 0 for padding: each row then runs alone on its tokens, and padded positions' outputs are 0)", Required = true };
        var output = new Option<string>("--out") { Description = "the .safetensors file to write (logits, and greedy_ids with --generate)", Required = true };
        var generate = new Option<int>("--generate") { Description = "also write greedy_ids: batch row 0 extended by exactly N argmax tokens (EOS masked)" };
        var target = new Option<string>("--target") { Description = "where to run: interpreter (the reference; default), cpu (compiled to C# and run in-process), cuda (an NVIDIA GPU through ILGPU) or cuda-sim (the cuda kernels on ILGPU's CPU accelerator)", DefaultValueFactory = _ => EvalTargets.Interpreter };
        var precision = new Option<string>("--precision") { Description = "interpreter arithmetic: f32 (default) or f64 (the cpu target is f32)", DefaultValueFactory = _ => "f32" };
        precision.AcceptOnlyFromAmong("f32", "f64");
        var dtype = CommonOptions.CudaDType();
        var set = CommonOptions.Set();
        var config = CommonOptions.Config();
        var json = CommonOptions.Json();
        var tp = CommonOptions.TensorParallel();
        var command = new Command("eval", "Run a model on inputs from a safetensors file and write its logits (and greedy tokens).")
        {
            model, weights, inputs, output, generate, target, precision, dtype, set, config, json, tp,
        };
        command.SetAction(parse =>
        {
            var clock = Stopwatch.StartNew();
            var targetName = parse.GetValue(target)!;
            if (!EvalTargets.Names.Contains(targetName))
                throw new McException($"--target {targetName}: not available in this build (available: {string.Join(", ", EvalTargets.Names)})");
            if (targetName != EvalTargets.Interpreter && parse.GetValue(precision) != "f32")
                throw new McException($"--precision {parse.GetValue(precision)}: only the interpreter computes in f64 (--target {targetName} is f32)");
            CommonOptions.CheckCudaDType(parse.GetValue(dtype)!, targetName);
            int steps = parse.GetValue(generate);
            if (steps < 0) throw new McException($"--generate {steps}: expected a number of tokens >= 0");
            var weightsPath = CommonOptions.ResolveWeights(parse.GetValue(model)!, parse.GetValue(weights));
            if (!File.Exists(weightsPath) && !Directory.Exists(weightsPath)) throw new McException($"{weightsPath}: no such file or folder");

            var loaded = CommonOptions.Load(parse.GetValue(model)!, CommonOptions.ResolveConfig(parse.GetValue(config), weightsPath), parse.GetValue(set));
            var graph = loaded.Graph;
            new PassManager(EvalTargets.Pipeline(targetName)).Run(graph);

            using var store = WeightStore.Open(weightsPath);
            WeightBinding.Validate(graph, store);

            var inputPath = parse.GetValue(inputs)!;
            var feeds = ReadInputs(graph, inputPath);
            var masked = AttentionMaskRows.Read(graph, inputPath, feeds);
            int ranks = parse.GetValue(tp);
            Graph Elaborate() => CommonOptions.Load(parse.GetValue(model)!, CommonOptions.ResolveConfig(parse.GetValue(config), weightsPath), parse.GetValue(set)).Graph;
            IEvalTarget runner = ranks == 1
                ? EvalTargets.Create(targetName, graph, store, parse.GetValue(precision) == "f64" ? Precision.F64 : Precision.F32, parse.GetValue(dtype)!)
                : targetName is EvalTargets.Cuda or EvalTargets.CudaSim
                ? CudaShardedEvalTarget.Create(targetName, ranks, Elaborate, store)
                : new TensorParallelEvalTarget(targetName, TensorParallel.ShardGraphs(Elaborate, ranks),
                    store, parse.GetValue(precision) == "f64" ? Precision.F64 : Precision.F32);
            using var disposable = runner as IDisposable;
            var results = masked is null ? runner.Run(feeds) : masked.Run(graph, runner);
            if (masked is not null) feeds = masked.Row(0);   // --generate extends row 0's tokens, padding left out

            var written = new List<TensorData>();
            foreach (var (name, (shape, data)) in results)
                written.Add(TensorData.FromFloat32(name, shape, data));

            long[]? greedy = null;
            if (steps > 0)
            {
                // The cpu target decodes decoder-only models through the KV cache: the graph again, rewritten by kv-cache, compiled.
                bool cached = targetName == EvalTargets.Cpu && !feeds.ContainsKey("decoder_input_ids") && ranks == 1;
                bool cudaCached = runner is CudaEvalTarget && !feeds.ContainsKey("decoder_input_ids");
                bool shardedCached = runner is CudaShardedEvalTarget && !feeds.ContainsKey("decoder_input_ids");
                greedy = WithProgress(cli, steps, runner.Name, progress => shardedCached
                    ? ((CudaShardedEvalTarget)runner).GenerateCached(feeds, steps, progress)
                    : cudaCached
                    ? ((CudaEvalTarget)runner).GenerateCached(
                        CommonOptions.Load(parse.GetValue(model)!, CommonOptions.ResolveConfig(parse.GetValue(config), weightsPath), parse.GetValue(set)).Graph,
                        store, feeds, steps, progress)
                    : cached
                    ? CpuEvalTarget.GenerateCached(
                        CommonOptions.Load(parse.GetValue(model)!, CommonOptions.ResolveConfig(parse.GetValue(config), weightsPath), parse.GetValue(set)).Graph,
                        store, feeds, steps, progress)
                    : Generate(graph, runner, feeds, steps, progress));
                written.Add(TensorData.FromInt64("greedy_ids", [1, greedy.Length], greedy));
            }
            var outPath = parse.GetValue(output)!;
            var dir = Path.GetDirectoryName(Path.GetFullPath(outPath));
            if (dir is not null && !Directory.Exists(dir)) throw new McException($"{outPath}: folder {dir} does not exist");
            SafetensorsWriter.Write(outPath, written, new Dictionary<string, string> { ["producer"] = "mc eval", ["target"] = targetName });

            if (parse.GetValue(json))
                cli.Out.WriteLine(JsonSerializer.Serialize(new
                {
                    model = graph.Name,
                    target = targetName,
                    outputs = written.ToDictionary(t => t.Name, t => new { dtype = t.DType.ToString(), shape = t.Shape }),
                    greedy_ids = greedy,
                    seconds = Math.Round(clock.Elapsed.TotalSeconds, 3),
                }));
            else
                cli.Out.WriteLine($"{graph.Name}: wrote {string.Join(", ", written.Select(t => $"{t.Name} {t.DType}[{string.Join(",", t.Shape)}]"))} to {outPath} ({targetName}, {clock.Elapsed.TotalSeconds:F2} s)");
            return McApp.Ok;
        });
        return command;
    }

    /// <summary>Each model input by name from the inputs file; extra tensors there (a reference file's logits) are ignored.</summary>
    internal static Dictionary<string, RefTensor> ReadInputs(Graph graph, string path)
    {
        using var file = SafetensorsFile.Open(path);
        var feeds = new Dictionary<string, RefTensor>(StringComparer.Ordinal);
        foreach (var input in graph.Inputs)
        {
            var name = input.Attrs.Str("name");
            if (!file.Contains(name))
                throw new McException($"{path}: no tensor '{name}' (the model's inputs: {string.Join(", ", graph.Inputs.Select(i => $"{i.Attrs.Str("name")} {i.Type}"))})");
            var info = file.Get(name);
            if (input.Type.DType.IsFloat() != info.DType.IsFloat())
                throw new McException($"{path}: tensor '{name}' is {info.DType} but the model declares {input.Type}");
            feeds[name] = input.Type.DType.IsFloat()
                ? RefTensor.FromFloats(info.Shape, file.ReadFloat64(name), input.Type.DType)
                : RefTensor.FromInts(info.Shape, file.ReadInt64(name), input.Type.DType);
        }
        return feeds;
    }

    /// <summary>Greedy decoding of batch row 0 (decoder-only), or of the decoder given row 0 as the encoder's input.</summary>
    /// <summary>Shows a progress bar on an interactive terminal's stderr; silent when stderr is redirected (scripts, tests).</summary>
    private static long[] WithProgress(CliContext cli, int steps, string target, Func<Action<int>?, long[]> work)
    {
        if (!ReferenceEquals(cli.Err, Console.Error) || Console.IsErrorRedirected) return work(null);
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        long[] result = [];
        console.Progress().Start(context =>
        {
            var task = context.AddTask($"greedy decoding ({target})", maxValue: steps);
            result = work(done => task.Value = done);
        });
        return result;
    }

    internal static long[] Generate(Graph graph, IEvalTarget target, Dictionary<string, RefTensor> feeds, int steps, Action<int>? progress = null)
    {
        var eos = GreedyDecoder.EosIds(graph);
        if (!feeds.TryGetValue("input_ids", out var inputIds) || inputIds.Shape.Length != 2)
            throw new McException("--generate needs an input_ids input of shape [batch, seq]");
        long seq = inputIds.Shape[1];
        var row0 = inputIds.I!.Take((int)seq).ToArray();
        var logitsName = graph.Outputs.Any(o => o.Key == "logits") ? "logits" : throw new McException("--generate needs an output named 'logits'");
        bool encoderDecoder = feeds.ContainsKey("decoder_input_ids");
        var others = feeds.Keys.Except(["input_ids", "decoder_input_ids"]).ToList();
        if (others.Count > 0) throw new McException($"--generate supports models whose inputs are input_ids (and decoder_input_ids); this one also takes {string.Join(", ", others)}");

        float[] LastLogits(long[] ids)
        {
            var stepFeeds = encoderDecoder
                ? new Dictionary<string, RefTensor> { ["input_ids"] = RefTensor.FromInts([1, seq], row0), ["decoder_input_ids"] = RefTensor.FromInts([1, ids.Length], ids) }
                : new Dictionary<string, RefTensor> { ["input_ids"] = RefTensor.FromInts([1, ids.Length], ids) };
            var (shape, logits) = target.Run(stepFeeds, cachedPrefixLength: encoderDecoder ? 1 : seq)[logitsName];
            long vocab = shape[^1];
            return logits.AsSpan((int)(logits.Length - vocab), (int)vocab).ToArray();
        }

        if (!encoderDecoder) return GreedyDecoder.Generate(row0, steps, eos, LastLogits, progress);
        if (!graph.TryGetHyperparameter<long>("decoder_start_token_id", out var start))
            throw new McException("--generate on an encoder-decoder needs the hyperparameter decoder_start_token_id");
        return GreedyDecoder.Generate([start], steps, eos, LastLogits, progress);
    }
}
