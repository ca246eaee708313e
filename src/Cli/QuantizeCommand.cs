using System.CommandLine;
using System.Text.Json;
using ModelCompiler.Backends.Quantization;
using ModelCompiler.Runtime;

namespace ModelCompiler.Cli;

/// <summary>
/// <c>mc quantize model --quantize int8|int4|awq-int4|w8a8|smoothquant [--prune ...] -o folder/</c>: the compressed
/// weights in folder/model.safetensors and the scheme in folder/quantization.json. Every command that takes a model
/// (eval, bench, compile, perplexity, run) accepts the folder in its place.
/// </summary>
internal static class QuantizeCommand
{
    public static Command Create(CliContext cli)
    {
        var model = CommonOptions.Model();
        var weights = new Option<string?>("--weights") { Description = "the weights to quantize: a Hugging Face folder or a .safetensors file (default: the model, when it is a folder)" };
        var output = new Option<string>("--out", "-o") { Description = "the folder to write (created if missing)", Required = true };
        var set = CommonOptions.Set();
        var config = CommonOptions.Config();
        var json = CommonOptions.Json();
        var options = new QuantizeOptions();
        var command = new Command("quantize", "Quantize and/or prune a model's linears and write the compressed weights with a manifest of the scheme.")
        {
            model, weights, output, set, config, json,
        };
        foreach (var o in options.All) command.Add(o);
        command.SetAction(parse =>
        {
            var modelArg = parse.GetValue(model)!;
            if (QuantizedFolder.IsQuantizedFolder(modelArg)) throw new McException($"{modelArg}: already quantized; quantize the original model");
            if (!options.Requested(parse)) throw new McException("nothing to do: give --quantize and/or --prune");
            var weightsPath = CommonOptions.ResolveWeights(modelArg, parse.GetValue(weights));
            var configPath = CommonOptions.ResolveConfig(parse.GetValue(config), weightsPath);
            var loaded = CommonOptions.Load(modelArg, configPath, parse.GetValue(set));
            var outDir = parse.GetValue(output)!;
            var (graph, summary) = options.Run(parse, cli, modelArg, loaded, weightsPath, configPath, parse.GetValue(set), outDir);
            if (parse.GetValue(json))
            {
                var manifest = QuantizedFolder.ReadManifest(outDir);
                cli.Out.WriteLine(JsonSerializer.Serialize(new
                {
                    model = graph.Name,
                    folder = outDir,
                    scheme = manifest.Request.Scheme,
                    prune = manifest.Request.Prune?.ToString(),
                    linears = manifest.Linears.Count,
                    bytes = new FileInfo(Path.Combine(outDir, WeightStore.SingleFileName)).Length,
                }));
            }
            else cli.Out.WriteLine(summary);
            return McApp.Ok;
        });
        return command;
    }
}
