using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Generation;

namespace ModelCompiler.Cli;

/// <summary>
/// <c>mc perplexity model --text file.txt [--window 256] [--skip-windows K] [--json]</c>: perplexity by the protocol of
/// <see cref="EvalCorpus"/> (documents separated by lines holding only the EOS token, each encoded alone and followed by
/// EOS; non-overlapping full windows), computed by <see cref="PerplexityEvaluator"/> on the compiled CPU model.
/// <c>--json</c> prints exactly <c>{"perplexity": P, "tokens": N}</c>, N the number of tokens scored.
/// </summary>
internal static class PerplexityCommand
{
    public static Command Create(CliContext cli)
    {
        var model = CommonOptions.Model();
        var weights = new Option<string?>("--weights") { Description = "a Hugging Face model folder or a .safetensors file (default: the model, when it is a folder)" };
        var text = new Option<string>("--text") { Description = "the evaluation text (UTF-8); documents are separated by lines holding only the EOS token", Required = true };
        var window = new Option<int>("--window") { Description = "tokens per window; windows do not overlap and only full ones are scored", DefaultValueFactory = _ => 256 };
        var skip = new Option<int>("--skip-windows") { Description = "leave the first K windows out of the score", DefaultValueFactory = _ => 0 };
        var batch = new Option<int>("--batch") { Description = "windows per forward pass", DefaultValueFactory = _ => 4 };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "a tokenizer.json, tokenizer.model or folder (default: the model's folder)" };
        var json = new Option<bool>("--json") { Description = "print {\"perplexity\": P, \"tokens\": N} (N: tokens scored)" };
        var command = new Command("perplexity", "Perplexity of a model on a text: non-overlapping windows, compiled CPU model, float32.")
        {
            model, weights, text, window, skip, batch, tokenizer, json,
        };
        command.SetAction(parse =>
        {
            var clock = Stopwatch.StartNew();
            int w = parse.GetValue(window), k = parse.GetValue(skip), b = parse.GetValue(batch);
            if (w < 1) throw new McException($"--window {w}: expected at least 1 token");
            if (k < 0) throw new McException($"--skip-windows {k}: expected a number >= 0");
            if (b < 1) throw new McException($"--batch {b}: expected at least 1");
            var textPath = parse.GetValue(text)!;
            if (!File.Exists(textPath)) throw new McException($"{textPath}: no such file");

            var source = GenerationModel.Open(parse.GetValue(model)!, parse.GetValue(weights), parse.GetValue(tokenizer));
            if (source.Defaults.EosIds.Count == 0) throw new McException($"{source.Tokenizer.Source}: the model names no EOS token, which separates the documents");
            int eos = source.Defaults.EosIds[0];
            var eosToken = source.Tokenizer.IdToToken(eos) ?? throw new McException($"EOS id {eos} is not in the tokenizer's vocabulary ({source.Tokenizer.Source})");
            var ids = EvalCorpus.Encode(source.Tokenizer, File.ReadAllText(textPath), eos, eosToken);

            var graph = source.Graph(CpuBackend.Pipeline);
            if (GenerationModel.ContextLength(graph) is long context && w > context)
                throw new McException($"--window {w}: longer than the model's context ({context} positions)");
            int windows = EvalCorpus.Windows(ids, w).Count;
            if (windows == 0) throw new McException($"{textPath}: {ids.Count} tokens make no full window of {w} (+1 target)");
            using var store = WeightStore.Open(source.WeightsPath);
            var evaluator = new PerplexityEvaluator(source.CompileCpu(graph, store), b);
            var result = GenerationModel.WithProgress(cli, $"perplexity ({windows - k} windows of {w})",
                progress => evaluator.Evaluate(ids, w, k, progress));

            if (parse.GetValue(json))
                cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{{\"perplexity\": {result.Perplexity:R}, \"tokens\": {result.Tokens}}}"));
            else
                cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"perplexity {result.Perplexity:F4} over {result.Tokens} tokens ({result.Windows} windows of {w}; {ids.Count} tokens in {textPath}; {clock.Elapsed.TotalSeconds:F1} s)"));
            return McApp.Ok;
        });
        return command;
    }
}
