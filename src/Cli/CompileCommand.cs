using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;

namespace ModelCompiler.Cli;

/// <summary>
/// <c>mc compile model.arch -o out/ [--emit cs] [--report]</c>: the model compiled for the CPU, without weights:
/// out/&lt;Model&gt;.dll (a class implementing ModelCompiler.Runtime.ICompiledModel), out/&lt;Model&gt;.manifest.json
/// (hyperparameters, inputs, outputs, weights, passes, kernel count) and, with --emit cs, the generated C#.
/// </summary>
internal static class CompileCommand
{
    public static Command Create(CliContext cli)
    {
        var model = CommonOptions.Model();
        var output = new Option<string?>("--out", "-o") { Description = "the folder to write into (created if missing); required unless --report" };
        var report = new Option<bool>("--report")
        {
            Description = "print which IR ops went into which kernel and, for each fusion pattern that did not fuse, why not (without --out: only the report, nothing compiled)",
        };
        var emit = new Option<string[]>("--emit") { Description = "also write these: cs (the generated C# source)", AllowMultipleArgumentsPerToken = true };
        emit.AcceptOnlyFromAmong("cs");
        var weights = new Option<string?>("--weights") { Description = "a Hugging Face model folder whose config.json supplies hyperparameters (its weights are not read)" };
        var set = CommonOptions.Set();
        var config = CommonOptions.Config();
        var json = CommonOptions.Json();
        var quantize = new QuantizeOptions();
        var command = new Command("compile", "Compile a model for the CPU: a .dll implementing ICompiledModel, its manifest, and optionally the generated C#. " +
            "With --quantize/--prune the compressed weights and quantization.json go into the same folder (as mc quantize writes them).")
        {
            model, output, emit, weights, set, config, json, report,
        };
        // A usage error (exit 2) like any other missing option: --out is required unless --report alone is asked for.
        command.Validators.Add(result =>
        {
            if (result.GetValue(output) is null && !result.GetValue(report))
                result.AddError("Option '--out' is required (or --report alone to print the fusion report).");
        });
        foreach (var o in quantize.All) command.Add(o);
        command.SetAction(parse =>
        {
            var clock = Stopwatch.StartNew();
            var outDir = parse.GetValue(output);
            bool wantReport = parse.GetValue(report);
            if (outDir is null && !wantReport) throw new McException("mc compile needs --out <folder> (or --report alone to print the fusion report)");
            if (outDir is not null && File.Exists(outDir)) throw new McException($"--out {outDir}: is a file, not a folder");

            Progress(cli, "loading the model");
            var loaded = CommonOptions.Load(parse.GetValue(model)!, CommonOptions.ResolveConfig(parse.GetValue(config), parse.GetValue(weights)), parse.GetValue(set));
            var graph = loaded.Graph;
            if (quantize.Requested(parse))
            {
                // The weights are read only here: quantizing needs them; the compiled code does not embed them.
                var modelArg = parse.GetValue(model)!;
                var weightsPath = CommonOptions.ResolveWeights(modelArg, parse.GetValue(weights));
                var configPath = CommonOptions.ResolveConfig(parse.GetValue(config), weightsPath);
                Progress(cli, "quantizing");
                graph = quantize.Run(parse, cli, modelArg, loaded, weightsPath, configPath, parse.GetValue(set), outDir).Graph;
            }
            var frontendTime = clock.Elapsed;
            var passes = new PassManager(CpuBackend.Pipeline).Run(graph);
            var fusion = wantReport ? FusionReport.Build(graph) : null;
            if (outDir is null)
            {
                cli.Out.Write(parse.GetValue(json) ? JsonSerializer.Serialize(new { model = graph.Name, report = fusion }, SnakeCase) + "\n" : $"{graph.Name}: {fusion!.Format()}");
                return McApp.Ok;
            }

            Progress(cli, $"generating C# for {graph.Nodes.Count} nodes and compiling it");
            var artifact = CpuBackend.Compile(graph);
            var generated = artifact.Generated;

            Directory.CreateDirectory(outDir);
            Progress(cli, $"writing {outDir}");
            var written = new List<string>();
            string Write(string suffix, byte[] bytes)
            {
                var path = Path.Combine(outDir, generated.FileBaseName + suffix);
                File.WriteAllBytes(path, bytes);
                written.Add(path);
                return path;
            }
            Write(".dll", artifact.Assembly);
            if ((parse.GetValue(emit) ?? []).Contains("cs")) Write(".cs", System.Text.Encoding.UTF8.GetBytes(generated.Source));
            Write(".manifest.json", System.Text.Encoding.UTF8.GetBytes(Manifest(graph, artifact, passes).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n"));

            if (parse.GetValue(json))
                cli.Out.WriteLine(JsonSerializer.Serialize(new
                {
                    model = graph.Name,
                    type = generated.TypeName,
                    files = written,
                    nodes = graph.Nodes.Count,
                    kernel_calls = generated.KernelCalls,
                    prepared_at_load = generated.PreparedAtLoad,
                    report = fusion,
                    seconds = new
                    {
                        frontend = Math.Round(frontendTime.TotalSeconds, 3),
                        emit = Math.Round(artifact.EmitTime.TotalSeconds, 3),
                        roslyn = Math.Round(artifact.CompileTime.TotalSeconds, 3),
                        total = Math.Round(clock.Elapsed.TotalSeconds, 3),
                    },
                }, SnakeCase));
            else
                cli.Out.WriteLine($"{graph.Name}: wrote {string.Join(", ", written)} ({generated.TypeName}, {graph.Nodes.Count} nodes, " +
                    $"{generated.KernelCalls} kernel calls per forward; frontend {frontendTime.TotalSeconds:F2} s, emit {artifact.EmitTime.TotalSeconds:F2} s, " +
                    $"roslyn {artifact.CompileTime.TotalSeconds:F2} s, total {clock.Elapsed.TotalSeconds:F2} s)");
            if (fusion is not null && !parse.GetValue(json)) cli.Out.Write(fusion.Format());
            return McApp.Ok;
        });
        return command;
    }

    /// <summary>What a program loading the .dll needs to know, deterministic for a given graph (no timings, no paths).</summary>
    internal static JsonObject Manifest(Graph graph, CpuArtifact artifact, IReadOnlyList<PassManager.PassReport> passes)
    {
        var g = artifact.Generated;
        static JsonArray Shape(TensorSpec s) => new(s.Shape.Select(d => d.IsKnown ? JsonValue.Create(d.Size) : (JsonNode)JsonValue.Create(d.Symbol!)).ToArray());
        static JsonObject Tensor(TensorSpec s) => new() { ["name"] = s.Name, ["dtype"] = s.DType.ShortName(), ["shape"] = Shape(s) };
        var hyper = new JsonObject();
        foreach (var (name, value) in graph.Hyperparameters)
            hyper[name] = value switch
            {
                long l => JsonValue.Create(l),
                double d when double.IsFinite(d) => JsonValue.Create(d),
                double d => JsonValue.Create(Attrs.FormatDouble(d)),
                bool b => JsonValue.Create(b),
                string s => JsonValue.Create(s),
                long[] a => new JsonArray(a.Select(x => (JsonNode)JsonValue.Create(x)).ToArray()),
                _ => JsonValue.Create(value.ToString()),
            };
        return new JsonObject
        {
            ["format"] = "mc-cpu-manifest/1",
            ["model"] = graph.Name,
            ["type"] = g.TypeName,
            ["assembly"] = g.FileBaseName + ".dll",
            ["interface"] = typeof(ICompiledModel).FullName,
            ["source_sha256"] = CpuBackend.Sha256(g.Source),
            ["hyperparameters"] = hyper,
            ["inputs"] = new JsonArray(g.Inputs.Select(s => (JsonNode)Tensor(s)).ToArray()),
            ["outputs"] = new JsonArray(g.Outputs.Select(s => (JsonNode)Tensor(s)).ToArray()),
            ["weights"] = new JsonArray(g.Weights.Select(s => (JsonNode)Tensor(s)).ToArray()),
            ["parameters"] = g.Weights.Sum(s => s.ElementCount),
            ["passes"] = new JsonArray(passes.Select(p => (JsonNode)new JsonObject { ["name"] = p.Name, ["changed"] = p.Changed, ["skipped"] = p.Skipped }).ToArray()),
            ["nodes"] = graph.Nodes.Count,
            ["kernel_calls"] = g.KernelCalls,
            ["prepared_at_load"] = g.PreparedAtLoad,
        };
    }

    private static readonly JsonSerializerOptions SnakeCase = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>A progress line on stderr, only for a person at a terminal (never in scripts or tests).</summary>
    private static void Progress(CliContext cli, string message)
    {
        if (ReferenceEquals(cli.Err, Console.Error) && !Console.IsErrorRedirected) cli.Err.WriteLine($"mc compile: {message}...");
    }
}
