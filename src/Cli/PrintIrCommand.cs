using System.CommandLine;
using ModelCompiler.IR;
using ModelCompiler.Passes;

namespace ModelCompiler.Cli;

/// <summary><c>mc print-ir model.arch</c>: the dataflow IR in its stable text form.</summary>
internal static class PrintIrCommand
{
    public static Command Create(CliContext cli)
    {
        var model = CommonOptions.Model();
        var set = CommonOptions.Set();
        var config = CommonOptions.Config();
        var weights = new Option<string?>("--weights") { Description = "a Hugging Face model folder whose config.json supplies hyperparameters" };
        var locations = new Option<bool>("--locations") { Description = "annotate each node with its .arch source position" };
        var printAfter = new Option<string[]>("--print-ir-after") { Description = "also print the IR after these passes ('all' for every pass)", AllowMultipleArgumentsPerToken = true };
        var disable = new Option<string[]>("--disable-pass") { Description = "skip these passes", AllowMultipleArgumentsPerToken = true };
        var timePasses = new Option<bool>("--time-passes") { Description = "report each pass's time" };
        var raw = new Option<bool>("--no-passes") { Description = "print the IR exactly as elaborated, before any pass" };
        var passes = new Option<string?>("--passes") { Description = "the pipeline to run, comma-separated (default: the interpreter's; see mc passes), e.g. dead-code-elimination,kv-cache" };
        var tp = CommonOptions.TensorParallel();
        var rank = new Option<int>("--rank") { Description = "with --tp N: which rank's program to print (0..N-1; default 0)" };
        var command = new Command("print-ir", "Print a model's dataflow IR (after the interpreter pipeline) in its stable text form.")
        {
            model, set, config, weights, locations, printAfter, disable, timePasses, raw, passes, tp, rank,
        };
        command.SetAction(parse =>
        {
            var loaded = CommonOptions.Load(parse.GetValue(model)!,
                CommonOptions.ResolveConfig(parse.GetValue(config), parse.GetValue(weights)), parse.GetValue(set));
            int ranks = parse.GetValue(tp), which = parse.GetValue(rank);
            if (which < 0 || which >= ranks) throw new Runtime.McException($"--rank {which}: expected 0..{ranks - 1} for --tp {ranks}");
            if (ranks > 1)
            {
                // One rank's program: cleanup, then the tensor-parallel pass (its collectives show in the IR), then the pipeline.
                new PassManager(PassManager.CleanupPipeline).Run(loaded.Graph);
                TensorParallelShard.CheckDivisible(loaded.Graph, ranks);
                new PassManager(new IPass[] { new TensorParallelShard(ranks, which) }).Run(loaded.Graph);
            }
            if (!parse.GetValue(raw))
            {
                var pipeline = parse.GetValue(passes) is { } list ? list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : PassManager.InterpreterPipeline;
                var manager = new PassManager(pipeline, new PassManager.Options
                {
                    PrintIrAfter = (parse.GetValue(printAfter) ?? []).ToHashSet(),
                    Disabled = (parse.GetValue(disable) ?? []).ToHashSet(),
                    TimePasses = parse.GetValue(timePasses),
                });
                manager.Run(loaded.Graph, cli.Err);
            }
            cli.Out.Write(Printer.Print(loaded.Graph, new Printer.Options(ShowLocations: parse.GetValue(locations))));
            return McApp.Ok;
        });
        return command;
    }
}
