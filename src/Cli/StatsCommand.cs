using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ModelCompiler.IR;
using ModelCompiler.Runtime;
using Spectre.Console;

namespace ModelCompiler.Cli;

/// <summary><c>mc stats model.arch</c>: parameters, FLOPs per token (prefill and decode), KV-cache bytes per token, weight bytes.</summary>
internal static class StatsCommand
{
    public static Command Create(CliContext cli)
    {
        var model = CommonOptions.Model();
        var set = CommonOptions.Set();
        var config = CommonOptions.Config();
        var weights = new Option<string?>("--weights") { Description = "a model folder or .safetensors: its config.json sets hyperparameters, its dtypes the weight bytes" };
        var seq = new Option<long>("--seq") { Description = "context length at which FLOPs are counted", DefaultValueFactory = _ => 512 };
        var json = CommonOptions.Json();
        var command = new Command("stats", "Count a model's parameters, FLOPs per token, KV-cache bytes per token and weight bytes (no weights needed).")
        {
            model, set, config, weights, seq, json,
        };
        command.SetAction(parse =>
        {
            var weightsPath = parse.GetValue(weights) ?? (Frontend.HuggingFaceImport.IsModelFolder(parse.GetValue(model)!) ? parse.GetValue(model) : null);
            var loaded = CommonOptions.Load(parse.GetValue(model)!, CommonOptions.ResolveConfig(parse.GetValue(config), weightsPath), parse.GetValue(set));
            var graph = loaded.Graph;
            new Passes.PassManager(Passes.PassManager.InterpreterPipeline).Run(graph);
            Dictionary<string, DType>? stored = null;
            if (weightsPath is not null)
            {
                using var store = WeightStore.Open(weightsPath);
                stored = graph.Weights.Select(w => w.Attrs.Str("name")).Where(store.Contains).ToDictionary(n => n, n => store.Get(n).DType);
            }
            var report = GraphStatistics.Compute(graph, parse.GetValue(seq), stored);
            if (parse.GetValue(json))
            {
                var parameters = new Dictionary<string, long> { ["total"] = report.TotalParameters };
                foreach (var (k, v) in report.ParametersByKind) parameters[k] = v;
                cli.Out.WriteLine(JsonSerializer.Serialize(new
                {
                    model = graph.Name,
                    @params = parameters,
                    flops_per_token = new { prefill = report.PrefillFlopsPerToken, decode = report.DecodeFlopsPerToken, seq = report.SequenceLength },
                    kv_bytes_per_token = report.KvBytesPerToken,
                    weight_bytes = report.WeightBytesByDType,
                }));
                return McApp.Ok;
            }
            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(cli.Out), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
            var table = new Table().AddColumn("quantity").AddColumn(new TableColumn("value").RightAligned());
            table.AddRow("parameters", Number(report.TotalParameters));
            foreach (var (k, v) in report.ParametersByKind) table.AddRow($"  {k}", Number(v));
            table.AddRow($"FLOPs per token, prefill of {report.SequenceLength}", Number((long)report.PrefillFlopsPerToken));
            table.AddRow($"FLOPs per token, decode at {report.SequenceLength}", Number((long)report.DecodeFlopsPerToken));
            table.AddRow("KV-cache bytes per token", Number(report.KvBytesPerToken));
            foreach (var (k, v) in report.WeightBytesByDType) table.AddRow($"weight bytes ({k})", Number(v));
            cli.Out.WriteLine($"{graph.Name} ({loaded.Source.RootPath})");
            console.Write(table);
            return McApp.Ok;
        });
        return command;
    }

    private static string Number(long n) => n.ToString("N0", CultureInfo.InvariantCulture);
}
