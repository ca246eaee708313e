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
        var target = new Option<string>("--target") { Description = "where to run: cpu (compiled, KV-cached; default) or interpreter (the reference; slow)", DefaultValueFactory = _ => EvalTargets.Cpu };
        target.AcceptOnlyFromAmong(EvalTargets.Cpu, EvalTargets.Interpreter);
        var command = new Command("run", "Generate text from a prompt, streamed token by token: stdout is the prompt and its completion, speeds go to stderr.")
        {
            model, weights, prompt, promptFile, maxTokens, temperature, topK, topP, seed, stop, tokenizer, target,
        };
        command.SetAction(parse =>
        {
            var promptText = ReadPrompt(parse.GetValue(prompt), parse.GetValue(promptFile));
            int max = parse.GetValue(maxTokens);
            if (max < 0) throw new McException($"--max-tokens {max}: expected a number >= 0");
            var source = GenerationModel.Open(parse.GetValue(model)!, parse.GetValue(weights), parse.GetValue(tokenizer));
            var defaults = source.Defaults.Sampling;
            var sampling = new SamplingOptions(parse.GetValue(temperature) ?? defaults.Temperature, parse.GetValue(topK) ?? defaults.TopK, parse.GetValue(topP) ?? defaults.TopP);
            sampling.Validate();
            ulong seedValue = parse.GetValue(seed) ?? BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
            var promptIds = source.Defaults.EncodePrompt(source.Tokenizer, promptText);

            using var store = WeightStore.Open(source.WeightsPath);
            var stepper = CreateStepper(source, store, parse.GetValue(target)!);
            var request = new GenerationRequest(promptIds, max, sampling, seedValue, source.Defaults.EosIds, parse.GetValue(stop) ?? []);
            var generator = new TextGenerator(stepper, source.Tokenizer);
            var steps = generator.Generate(request); // validates (prompt length) before anything is printed

            cli.Out.Write(promptText);
            cli.Out.Flush();
            var clock = Stopwatch.StartNew();
            TimeSpan? promptTime = null;
            int generated = 0;
            FinishReason? finish = null;
            foreach (var step in steps)
            {
                // The first step comes after the prefill: its time is the prompt's (llama.cpp counts it the same way).
                if (promptTime is null) { promptTime = clock.Elapsed; clock.Restart(); }
                if (step.TokenId >= 0) generated++;
                cli.Out.Write(step.Text);
                cli.Out.Flush();
                finish = step.Finish;
            }
            var generationTime = clock.Elapsed;
            var prefillTime = promptTime ?? generationTime;
            cli.Err.WriteLine();
            cli.Err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"prompt: {promptIds.Count} tokens in {prefillTime.TotalSeconds:F3} s ({promptIds.Count / Math.Max(prefillTime.TotalSeconds, 1e-9):F1} tokens/s)"));
            cli.Err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"generated: {generated} tokens in {generationTime.TotalSeconds:F3} s ({Rate(generated - 1, generationTime)} tokens/s); stopped by {Describe(finish)}; {(sampling.IsGreedy ? "greedy" : $"seed {seedValue}")}"));
            return McApp.Ok;
        });
        return command;
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
