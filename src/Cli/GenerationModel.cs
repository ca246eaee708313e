using ModelCompiler.Backends;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Generation;
using ModelCompiler.Runtime.Tokenizers;
using Spectre.Console;

namespace ModelCompiler.Cli;

/// <summary>
/// What <c>mc run</c> and <c>mc perplexity</c> share: the model (an .arch file with --weights, or a Hugging Face folder),
/// its weights, its tokenizer (--tokenizer, else the model's or the weights' folder) and its generation defaults.
/// </summary>
internal sealed class GenerationModel
{
    private readonly string _model;
    private readonly string? _config;

    private GenerationModel(string model, string weightsPath, string? config, ITokenizer tokenizer, GenerationDefaults defaults)
    {
        _model = model; WeightsPath = weightsPath; _config = config; Tokenizer = tokenizer; Defaults = defaults;
    }

    public string WeightsPath { get; }

    public ITokenizer Tokenizer { get; }

    public GenerationDefaults Defaults { get; }

    public static GenerationModel Open(string model, string? weights, string? tokenizer)
    {
        var weightsPath = CommonOptions.ResolveWeights(model, weights);
        if (!File.Exists(weightsPath) && !Directory.Exists(weightsPath)) throw new McException($"{weightsPath}: no such file or folder");
        if (Runtime.Gguf.GgufFile.LooksLikeGguf(weightsPath))
        {
            // A .gguf file carries its tokenizer (unless --tokenizer) and its BOS/EOS ids and add_bos_token in its metadata.
            var ggufTokenizer = TokenizerLoader.Load(tokenizer ?? weightsPath);
            return new GenerationModel(model, weightsPath, null, ggufTokenizer, GgufDefaults(weightsPath, ggufTokenizer));
        }
        // The folder holding the checkpoint also holds its tokenizer and generation_config.json (a Hugging Face folder).
        var folder = Directory.Exists(weightsPath) ? weightsPath : Path.GetDirectoryName(Path.GetFullPath(weightsPath))!;
        if (tokenizer is null && !File.Exists(Path.Combine(folder, "tokenizer.json")) && !File.Exists(Path.Combine(folder, "tokenizer.model")))
            throw new McException($"{folder}: no tokenizer.json or tokenizer.model beside the weights; give --tokenizer (a tokenizer file or folder)");
        var loadedTokenizer = TokenizerLoader.Load(tokenizer ?? folder);
        return new GenerationModel(model, weightsPath, CommonOptions.ResolveConfig(null, weightsPath), loadedTokenizer, GenerationDefaults.Load(folder, loadedTokenizer));
    }

    private static GenerationDefaults GgufDefaults(string path, ITokenizer tokenizer)
    {
        using var file = Runtime.Gguf.GgufFile.Open(path);
        long? eos = file.Integer("tokenizer.ggml.eos_token_id"), bos = file.Integer("tokenizer.ggml.bos_token_id");
        var addBos = file.Metadata.TryGetValue("tokenizer.ggml.add_bos_token", out var v) && v is true;
        int? bosId = bos is long b && b >= 0 && b < int.MaxValue ? (int)b : tokenizer.SpecialIds.Bos;
        if (addBos && bosId is null) throw new McException($"{path}: tokenizer.ggml.add_bos_token is set but no BOS token id is known");
        int[] eosIds = eos is long e && e >= 0 && e < int.MaxValue ? [(int)e] : tokenizer.SpecialIds.Eos is int t ? [t] : [];
        return new GenerationDefaults(eosIds, bosId, addBos, Runtime.Generation.SamplingOptions.Greedy);
    }

    /// <summary>A fresh graph of the model with <paramref name="pipeline"/> run on it.</summary>
    public Graph Graph(IReadOnlyList<string> pipeline)
    {
        var graph = CommonOptions.Load(_model, _config, null).Graph;
        new PassManager(pipeline).Run(graph);
        return graph;
    }

    /// <summary>The model compiled for the CPU (see <see cref="CpuEvalTarget"/> for MC_CPU_CACHE) with its weights loaded.</summary>
    public ICompiledModel CompileCpu(Graph graph, WeightStore store)
    {
        WeightBinding.Validate(graph, store);
        var cache = Environment.GetEnvironmentVariable("MC_CPU_CACHE");
        var model = CpuBackend.Instantiate(CpuBackend.Compile(graph, string.IsNullOrEmpty(cache) ? null : cache));
        model.LoadWeights(store);
        return model;
    }

    /// <summary>
    /// The model compiled for the paged KV cache (weights loaded), with StreamingLLM's sinks and window when
    /// <paramref name="streaming"/> is given; null when the model cannot be paged (<paramref name="why"/> says why).
    /// <paramref name="context"/> is its context length (max_position_embeddings), when its hyperparameters say.
    /// </summary>
    public Runtime.Paged.IPagedCompiledModel? CompilePaged(WeightStore store, (int Sinks, int Window)? streaming, out long? context, out string? why)
    {
        var graph = Graph(CpuBackend.CachedPipeline);
        context = ContextLength(graph);
        why = PagedKvCacheRewrite.Unsupported(graph);
        if (why is not null) return null;
        new PassManager(["paged-kv-cache"]).Run(graph);
        if (streaming is { } s) new StreamingLlmRewrite(s.Sinks, s.Window).Run(graph);
        new PassManager(["paged-logit-rows"]).Run(graph);
        return (Runtime.Paged.IPagedCompiledModel)CompileCpu(graph, store);
    }

    /// <summary>The model sharded over <paramref name="ranks"/> ranks (<c>--tp</c>), each rank compiled with its KV cache and weight slices.</summary>
    public Backends.Generation.TensorParallelStepper CompileCpuSharded(WeightStore store, int ranks)
    {
        var whole = Graph(PassManager.InterpreterPipeline);
        WeightBinding.Validate(whole, store);
        var cache = Environment.GetEnvironmentVariable("MC_CPU_CACHE");
        return Backends.Generation.TensorParallelStepper.CompileCpu(() => CommonOptions.Load(_model, _config, null).Graph, ranks, store,
            ContextLength(whole), string.IsNullOrEmpty(cache) ? null : cache);
    }

    /// <summary>
    /// The model on <paramref name="ranks"/> GPUs (or simulated ones), one rank's shard and KV cache on each, for
    /// <c>mc run --target cuda|cuda-sim [--tp N]</c>; the stepper owns the devices.
    /// </summary>
    public Backends.Cuda.CudaShardedStepper CompileCudaSharded(WeightStore store, int ranks, bool simulate)
    {
        var whole = Graph(PassManager.InterpreterPipeline);
        WeightBinding.Validate(whole, store);
        Graph Elaborate() => CommonOptions.Load(_model, _config, null).Graph;
        TensorParallel.ShardGraphs(Elaborate, ranks);   // the divisibility error before any device is opened
        var group = Backends.Cuda.CudaRankGroup.Open(ranks, simulate);
        try
        {
            var model = Backends.Cuda.CudaShardedModel.Create(group, Elaborate, Backends.Cuda.CudaBackend.CachedPipeline, store.ReadFloat32);
            return new Backends.Cuda.CudaShardedStepper(model, model.Graphs[0], ContextLength(whole));
        }
        catch
        {
            group.Dispose();
            throw;
        }
    }

    /// <summary>The longest sequence the model was trained on (max_position_embeddings), when its hyperparameters say.</summary>
    public static long? ContextLength(Graph graph)
    {
        foreach (var name in (string[])["max_positions", "max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length"])
            if (graph.TryGetHyperparameter<long>(name, out var n) && n > 0) return n;
        return null;
    }

    /// <summary>Runs <paramref name="work"/> with a progress bar on an interactive terminal's stderr; silent when
    /// stderr is redirected (scripts, tests) so that it carries only the summary lines.</summary>
    public static T WithProgress<T>(CliContext cli, string description, Func<Action<int, int>?, T> work)
    {
        if (!ReferenceEquals(cli.Err, Console.Error) || Console.IsErrorRedirected) return work(null);
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        T result = default!;
        console.Progress().Start(context =>
        {
            var task = context.AddTask(description, autoStart: true);
            result = work((done, total) => { task.MaxValue = Math.Max(total, 1); task.Value = done; });
        });
        return result;
    }
}
