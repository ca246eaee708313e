using System.CommandLine;
using System.Diagnostics;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;

namespace ModelCompiler.Cli;

/// <summary><c>mc graph model [--after pass] -o model.svg|.dot</c>: the IR as a picture.</summary>
internal static class GraphCommand
{
    public static Command Create(CliContext cli)
    {
        var model = CommonOptions.Model();
        var set = CommonOptions.Set();
        var config = CommonOptions.Config();
        var after = new Option<string?>("--after") { Description = "draw the IR after this pass of the cleanup pipeline (see mc passes), e.g. common-subexpression-elimination or kv-cache" };
        var output = new Option<string>("--output", "-o") { Description = "model.dot (DOT text) or model.svg (rendered with Graphviz's dot)", Required = true };
        var command = new Command("graph", "Draw a model's IR as a DOT graph or, through Graphviz, an SVG.")
        {
            model, set, config, after, output,
        };
        command.SetAction(parse =>
        {
            var loaded = CommonOptions.Load(parse.GetValue(model)!, CommonOptions.ResolveConfig(parse.GetValue(config), null), parse.GetValue(set));
            if (parse.GetValue(after) is { } pass)
            {
                PassManager.Find(pass);
                var pipeline = PassManager.CleanupPipeline.Contains(pass)
                    ? PassManager.CleanupPipeline.Take(PassManager.CleanupPipeline.ToList().IndexOf(pass) + 1)
                    : PassManager.CleanupPipeline.Append(pass);
                new PassManager(pipeline).Run(loaded.Graph);
            }
            var dot = DotExporter.ToDot(loaded.Graph);
            var path = parse.GetValue(output)!;
            switch (Path.GetExtension(path).ToLowerInvariant())
            {
                case ".dot" or ".gv":
                    File.WriteAllText(path, dot);
                    break;
                case ".svg":
                    RenderSvg(dot, path);
                    break;
                default:
                    throw new McException($"-o {path}: expected a .dot or .svg file name");
            }
            cli.Out.WriteLine($"wrote {path} ({loaded.Graph.Nodes.Count} nodes)");
            return McApp.Ok;
        });
        return command;
    }

    private static void RenderSvg(string dot, string path)
    {
        var start = new ProcessStartInfo("dot", ["-Tsvg", "-o", path]) { RedirectStandardInput = true, RedirectStandardError = true };
        Process process;
        try { process = Process.Start(start)!; }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new McException($"-o {path}: rendering SVG needs Graphviz's 'dot' on the PATH (Debian: apt-get install graphviz); -o {Path.ChangeExtension(path, ".dot")} writes the DOT text without it");
        }
        using (process)
        {
            process.StandardInput.Write(dot);
            process.StandardInput.Close();
            var err = process.StandardError.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0) throw new McException($"dot failed rendering {path}: {err.Split('\n')[0]}");
        }
    }
}
