using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ModelCompiler.Backends;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.Backends.Generation;
using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Generation;

namespace ModelCompiler.Cli;

/// <summary>
/// <c>mc run model --prompt "..." [--max-tokens N --temperature T --top-k K --top-p P --seed S --stop "..."]</c>: generates
/// text with the model's tokenizer through the KV-cached model, streaming it token by token. Stdout carries exactly the
/// prompt followed by the completion; the prompt and generation speeds (tokens/s) go to stderr.
/// </summary>
internal static class RunCommand
{
    public static Command Create(CliContext cli)
    {
        var model = CommonOptions.Model();
        var weights = new Option<string?>("--weights") { Description = "a Hugging Face model folder or a .safetensors file (default: the model, when it is a folder); its folder holds the tokenizer" };
        var prompt = new Option<string?>("--prompt") { Description = "the text to continue" };
        var promptFile = new Option<string?>("--prompt-file") { Description = "read the prompt from a UTF-8 file (exactly as it is, newlines included)" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "the most new tokens to generate (fewer at EOS, a stop string or the end of the context)", DefaultValueFactory = _ => 128 };
        var temperature = new Option<double?>("--temperature") { Description = "0 is greedy; higher samples more freely (default: generation_config.json's, else greedy)" };
        var topK = new Option<int?>("--top-k") { Description = "sample from the K most likely tokens only (0: all)" };
        var topP = new Option<double?>("--top-p") { Description = "sample from the smallest set of most likely tokens whose probability reaches P (1: all)" };
        var seed = new Option<ulong?>("--seed") { Description = "seed of the sampler: the same seed gives the same text (default: random, printed on stderr)" };
        var stop = new Option<string[]>("--stop") { Description = "stop when this text appears; it is not printed (repeatable)", Arity = ArgumentArity.OneOrMore };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "a tokenizer.json, tokenizer.model or folder (default: the model's folder)" };
        var target = new Option<string>("--target") { Description = "where to run: cpu (compiled, KV-cached; default), interpreter (the reference; slow), cuda (NVIDIA GPUs; with --tp N, N of them through NCCL) or cuda-sim (the cuda kernels on ILGPU's CPU accelerator)", DefaultValueFactory = _ => EvalTargets.Cpu };
        target.AcceptOnlyFromAmong(EvalTargets.Cpu, EvalTargets.Interpreter, EvalTargets.Cuda, EvalTargets.CudaSim);
        var tp = CommonOptions.TensorParallel();
        var samples = new Option<int>("--n") { Description = "samples of the prompt, decoded together (paged cache: the prompt is prefilled once and its blocks shared); sample i > 1 uses a seed derived from --seed; stdout: each sample under a line '=== sample i of K ==='", DefaultValueFactory = _ => 1 };
        var cache = new Option<string>("--cache") { Description = "KV cache on --target cpu: paged (block pool; default) or contiguous", DefaultValueFactory = _ => "paged" };
        cache.AcceptOnlyFromAmong("paged", "contiguous");
        var streamingWindow = new Option<int?>("--streaming-window") { Description = "StreamingLLM mode: keep the sink tokens plus the last W tokens, so generation may go past the model's context with flat memory (RoPE models)" };
        var streamingSinks = new Option<int?>("--streaming-sinks") { Description = "with --streaming-window: the first K tokens every query keeps seeing (attention sinks; default 4)" };
        var command = new Command("run", "Generate text from a prompt, streamed token by token: stdout is the prompt and its completion, speeds go to stderr.")
        {
            model, weights, prompt, promptFile, maxTokens, temperature, topK, topP, seed, stop, tokenizer, target, tp, samples, cache, streamingWindow, streamingSinks,
        };
        command.SetAction(parse =>
        {
            var promptText = ReadPrompt(parse.GetValue(prompt), parse.GetValue(promptFile));
            int max = parse.GetValue(maxTokens);
            if (max < 0) throw new McException($"--max-tokens {max}: expected a number >= 0");
            int k = parse.GetValue(samples);
            if (k < 1 || k > MaxSamples) throw new McException($"--n {k}: expected 1..{MaxSamples} samples");
            var streaming = StreamingOptions(parse.GetValue(streamingSinks), parse.GetValue(streamingWindow));
            bool needsPaged = k > 1 || streaming is not null;
            string what = k > 1 ? $"--n {k}" : "--streaming-window";
            int ranks = parse.GetValue(tp);
            var targetName = parse.GetValue(target)!;
            bool paged = parse.GetValue(cache) == "paged" && targetName == EvalTargets.Cpu && ranks == 1;
            if (needsPaged && !paged) throw new McException($"{what} needs the paged KV cache: --target cpu, --cache paged and no --tp");

            var source = GenerationModel.Open(parse.GetValue(model)!, parse.GetValue(weights), parse.GetValue(tokenizer));
            var defaults = source.Defaults.Sampling;
            var sampling = new SamplingOptions(parse.GetValue(temperature) ?? defaults.Temperature, parse.GetValue(topK) ?? defaults.TopK, parse.GetValue(topP) ?? defaults.TopP);
            sampling.Validate();
            ulong seedValue = parse.GetValue(seed) ?? BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
            var promptIds = source.Defaults.EncodePrompt(source.Tokenizer, promptText);

            using var store = WeightStore.Open(source.WeightsPath);
            bool cuda = targetName is EvalTargets.Cuda or EvalTargets.CudaSim;
            if (ranks > 1 && targetName == EvalTargets.Interpreter) throw new McException($"--tp {ranks} runs on --target cpu, cuda or cuda-sim (the interpreter's sharded runs are mc eval's)");
            using var disposables = new DisposableList();
            var request = new GenerationRequest(promptIds, max, sampling, seedValue, source.Defaults.EosIds, parse.GetValue(stop) ?? []);
            ParallelSampleGenerator? parallel = null;
            IEnumerable<SampleStep>? steps = null;
            if (paged)
            {
                var pagedModel = source.CompilePaged(store, streaming, out var context, out var why);
                if (pagedModel is null && needsPaged) throw new McException($"{what} needs the paged KV cache, which this model cannot use: {why}");
                if (pagedModel is not null)
                {
                    if (streaming is { } s && context is long c && s.Sinks + (long)s.Window > c)
                        throw new McException($"--streaming-sinks {s.Sinks} + --streaming-window {s.Window} exceed the model's context of {c} tokens");
                    const int blockSize = 16;
                    var pool = new Runtime.Paged.KvBlockPool(pagedModel.CacheLayers, ParallelSampleGenerator.BlocksNeeded(pagedModel, promptIds.Count, max, k, blockSize, streaming is null ? context : null), blockSize);
                    var engine = new Runtime.Paged.PagedEngine(pagedModel, pool, maxTokensPerStep: Math.Max(promptIds.Count, k), maxSequencesPerStep: k);
                    parallel = new ParallelSampleGenerator(engine, source.Tokenizer, streaming is null ? context : null);
                    steps = parallel.Generate(request, k); // validates (prompt length) before anything is printed
                }
            }
            if (steps is null)
            {
                var stepper = cuda ? source.CompileCudaSharded(store, ranks, simulate: targetName == EvalTargets.CudaSim)
                    : ranks > 1 ? source.CompileCpuSharded(store, ranks) : CreateStepper(source, store, targetName);
                disposables.Add(stepper as IDisposable);
                steps = new TextGenerator(stepper, source.Tokenizer).Generate(request).Select(step => new SampleStep(0, step)); // validates first
            }

            if (k == 1)
            {
                cli.Out.Write(promptText);
                cli.Out.Flush();
            }
            var texts = Enumerable.Range(0, k).Select(_ => new StringBuilder()).ToArray();
            var generated = new int[k];
            var finish = new FinishReason?[k];
            var clock = Stopwatch.StartNew();
            TimeSpan? promptTime = null;
            foreach (var (sample, step) in steps)
            {
                // The first step comes after the prefill: its time is the prompt's (llama.cpp counts it the same way).
                if (promptTime is null) { promptTime = clock.Elapsed; clock.Restart(); }
                if (step.TokenId >= 0) generated[sample]++;
                finish[sample] = step.Finish;
                if (k > 1) { texts[sample].Append(step.Text); continue; }
                cli.Out.Write(step.Text);
                cli.Out.Flush();
            }
            var generationTime = clock.Elapsed;
            var prefillTime = promptTime ?? generationTime;
            for (int i = 0; i < k && k > 1; i++)
            {
                cli.Out.Write(SampleHeader(i, k) + "\n" + promptText + texts[i] + "\n");
                cli.Out.Flush();
            }
            cli.Err.WriteLine();
            cli.Err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"prompt: {promptIds.Count} tokens in {prefillTime.TotalSeconds:F3} s ({promptIds.Count / Math.Max(prefillTime.TotalSeconds, 1e-9):F1} tokens/s)"));
            string Seed(int i) => sampling.IsGreedy ? "greedy" : $"seed {ParallelSampleGenerator.SampleSeed(seedValue, i)}";
            if (k == 1)
                cli.Err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"generated: {generated[0]} tokens in {generationTime.TotalSeconds:F3} s ({Rate(generated[0] - 1, generationTime)} tokens/s); stopped by {Describe(finish[0])}; {Seed(0)}"));
            else
            {
                cli.Err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"generated: {generated.Sum()} tokens in {generationTime.TotalSeconds:F3} s ({Rate(generated.Sum() - k, generationTime)} tokens/s) over {k} samples"));
                for (int i = 0; i < k; i++)
                    cli.Err.WriteLine($"sample {i + 1}: {generated[i]} tokens; stopped by {Describe(finish[i])}; {Seed(i)}");
            }
            if (parallel is not null && (k > 1 || streaming is not null))
            {
                var pool = parallel.Engine.Pool;
                var mode = streaming is { } s ? $"StreamingLLM ({s.Sinks} sinks + a window of {s.Window}); " : "";
                cli.Err.WriteLine($"kv cache: {mode}blocks of {pool.BlockSize} tokens: {parallel.PromptBlocks} after the prompt (shared by {k} sample{(k > 1 ? "s" : "")}), at most {parallel.PeakBlocks} in use");
            }
            return McApp.Ok;
        });
        return command;
    }

    /// <summary>What the command must dispose at its end (a GPU stepper holds its devices).</summary>
    private sealed class DisposableList : List<IDisposable?>, IDisposable
    {
        public void Dispose()
        {
            foreach (var d in this) d?.Dispose();
        }
    }

    /// <summary>The most samples <c>--n</c> takes (they decode in one batch).</summary>
    public const int MaxSamples = 64;

    /// <summary>The line before sample <paramref name="index"/> (0-based) of <paramref name="count"/> on stdout when <c>--n</c> &gt; 1.</summary>
    public static string SampleHeader(int index, int count) => $"=== sample {index + 1} of {count} ===";

    private static (int Sinks, int Window)? StreamingOptions(int? sinks, int? window)
    {
        if (window is null)
        {
            if (sinks is not null) throw new McException("--streaming-sinks needs --streaming-window");
            return null;
        }
        int k = sinks ?? 4;
        if (k < 0) throw new McException($"--streaming-sinks {k}: expected a number >= 0");
        if (window < 1) throw new McException($"--streaming-window {window}: expected at least 1 token");
        return (k, window.Value);
    }

    /// <summary>Tokens/s of the decode steps: the first token came with the prefill.</summary>
    private static string Rate(int tokens, TimeSpan time) =>
        tokens <= 0 ? "-" : (tokens / Math.Max(time.TotalSeconds, 1e-9)).ToString("F1", CultureInfo.InvariantCulture);

    private static string Describe(FinishReason? finish) => finish switch
    {
        FinishReason.Eos => "EOS",
        FinishReason.Stop => "a stop string",
        FinishReason.Length => "--max-tokens",
        FinishReason.Context => "the end of the context",
        _ => "cancellation",
    };

    private static string ReadPrompt(string? prompt, string? promptFile)
    {
        if ((prompt is null) == (promptFile is null)) throw new McException("give the prompt with either --prompt \"...\" or --prompt-file FILE");
        if (prompt is not null) return prompt;
        if (!File.Exists(promptFile)) throw new McException($"{promptFile}: no such file");
        try { return File.ReadAllText(promptFile!, new UTF8Encoding(false, throwOnInvalidBytes: true)); }
        catch (DecoderFallbackException) { throw new McException($"{promptFile}: not valid UTF-8"); }
    }

    private static ITokenStepper CreateStepper(GenerationModel source, WeightStore store, string target)
    {
        var graph = source.Graph(target == EvalTargets.Cpu ? CpuBackend.CachedPipeline : [.. Passes.PassManager.InterpreterPipeline, "kv-cache"]);
        var context = GenerationModel.ContextLength(graph);
        if (target == EvalTargets.Cpu) return new CompiledCachedStepper(graph, source.CompileCpu(graph, store), context);
        WeightBinding.Validate(graph, store);
        var load = WeightBinding.Loader(store);
        var cache = new Dictionary<string, RefTensor>(StringComparer.Ordinal);
        return new InterpreterCachedStepper(graph, (name, type) => cache.TryGetValue(name, out var t) ? t : cache[name] = load(name, type), context);
    }
}
