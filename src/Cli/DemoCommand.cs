using System.CommandLine;
using System.Diagnostics;
using ModelCompiler.Backends;
using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using Spectre.Console;

namespace ModelCompiler.Cli;

/// <summary>
/// <c>mc demo</c>: the whole pipeline on a machine with nothing but the .NET SDK: a model at a tiny
/// size with seeded random weights, parsed, elaborated, run and greedily decoded, saying what it did.
/// </summary>
internal static class DemoCommand
{
    private static readonly Dictionary<string, string> TinySizes = new()
    {
        ["vocab"] = "256", ["dim"] = "64", ["n_layers"] = "2", ["n_heads"] = "4", ["n_kv_heads"] = "2",
        ["head_dim"] = "16", ["ffn_dim"] = "160", ["max_positions"] = "64",
    };

    public static Command Create(CliContext cli)
    {
        var model = new Argument<string>("model") { Description = "the .arch file", DefaultValueFactory = _ => Path.Combine("examples", "llama.arch") };
        var seed = new Option<int>("--seed") { Description = "seed of the random weights and prompt", DefaultValueFactory = _ => 0 };
        var tokens = new Option<int>("--tokens") { Description = "greedy tokens to generate", DefaultValueFactory = _ => 8 };
        var set = CommonOptions.Set();
        var command = new Command("demo", "Run a model end to end at a tiny size with seeded random weights (default: examples/llama.arch).")
        {
            model, seed, tokens, set,
        };
        command.SetAction(parse =>
        {
            var clock = Stopwatch.StartNew();
            var path = parse.GetValue(model)!;
            // Outside a checkout (mc installed as a tool) the default model comes from mc's built-in library.
            Frontend.IArchFiles? files = null;
            if (!File.Exists(path) && path == Path.Combine("examples", "llama.arch"))
            {
                path = Frontend.BuiltinArchFiles.Scheme + "llama.arch";
                files = Frontend.BuiltinArchFiles.Instance;
            }
            var userSets = CommonOptions.ParseSets(parse.GetValue(set));
            var source = files is null && !File.Exists(path) ? null : Frontend.ArchLoader.Load(path, new Frontend.DiagnosticBag(), files);
            var sets = TinySizes.Where(kv => source?.Hypers.Any(h => h.Name == kv.Key) == true).ToDictionary();
            foreach (var (k, v) in userSets) sets[k] = v;
            var loaded = files is null
                ? CommonOptions.Load(path, null, sets.Select(kv => $"{kv.Key}={kv.Value}").ToArray())
                : Frontend.ModelFrontend.Load(path, null, sets, files);
            var graph = loaded.Graph;
            new PassManager(PassManager.InterpreterPipeline).Run(graph);

            var random = new Random(parse.GetValue(seed));
            var weights = graph.Weights.ToDictionary(w => w.Attrs.Str("name"), w => RandomWeight(w.Type, random));
            long vocab = graph.Output("logits").Type[-1].Size;
            var prompt = Enumerable.Range(0, 6).Select(_ => (long)random.Next((int)vocab)).ToArray();
            var interpreter = new Interpreter(graph);
            var logits = interpreter.Run(new Dictionary<string, RefTensor> { ["input_ids"] = RefTensor.FromInts([1, prompt.Length], prompt) }, (n, _) => weights[n])["logits"];
            var generated = GreedyDecoder.Generate(prompt, parse.GetValue(tokens), GreedyDecoder.EosIds(graph), ids =>
            {
                var l = interpreter.Run(new Dictionary<string, RefTensor> { ["input_ids"] = RefTensor.FromInts([1, ids.Length], ids) }, (n, _) => weights[n])["logits"];
                return l.ToFloat32().AsSpan((int)(l.ElementCount - vocab)).ToArray();
            });

            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(cli.Out), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
            long parameters = graph.Weights.Sum(w => w.Type.Shape.Aggregate(1L, (a, d) => a * d.Size));
            var table = new Table().AddColumn("step").AddColumn("result");
            table.AddRow("parse + check", Markup.Escape($"{path}: {loaded.Source.Files.Count} file(s), {loaded.Source.Blocks.Count} blocks"));
            table.AddRow("hyperparameters", Markup.Escape(string.Join(" ", sets.OrderBy(k => k.Key).Select(kv => $"{kv.Key}={kv.Value}"))));
            table.AddRow("elaborate to IR", Markup.Escape($"{graph.Nodes.Count} nodes, {graph.Weights.Count()} weights ({parameters:N0} parameters, random, seed {parse.GetValue(seed)})"));
            table.AddRow("interpreter forward", Markup.Escape($"input_ids [1,{prompt.Length}] -> logits [{string.Join(",", logits.Shape)}]"));
            table.AddRow("greedy decode", Markup.Escape($"[{string.Join(", ", prompt)}] -> [{string.Join(", ", generated.Skip(prompt.Length))}]"));
            table.AddRow("time", Markup.Escape($"{clock.Elapsed.TotalSeconds:F2} s"));
            console.Write(table);
            cli.Out.WriteLine("Next: mc print-ir examples/llama.arch --set n_layers=1   (the IR),  mc eval ... (real weights; see README)");
            return McApp.Ok;
        });
        return command;
    }

    /// <summary>Norm-like vectors near 1, matrices scaled by 1/sqrt(fan-in) so activations stay O(1).</summary>
    private static RefTensor RandomWeight(TensorType type, Random random)
    {
        var shape = type.Shape.Select(d => d.Size).ToArray();
        long n = shape.Aggregate(1L, (a, b) => a * b);
        double scale = shape.Length >= 2 ? 1 / Math.Sqrt(shape[^1]) : 0.1;
        var data = new double[n];
        for (long i = 0; i < n; i++)
        {
            double g = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
            data[i] = (shape.Length == 1 ? 1 : 0) + scale * g;
        }
        return RefTensor.FromFloats(shape, data, type.DType);
    }
}
