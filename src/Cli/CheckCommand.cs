using System.CommandLine;
using System.Text.Json;
using ModelCompiler.Frontend;

namespace ModelCompiler.Cli;

/// <summary><c>mc check model.arch</c>: parse and type-check, reporting every error with a caret.</summary>
internal static class CheckCommand
{
    public static Command Create(CliContext cli)
    {
        var model = CommonOptions.Model();
        var set = CommonOptions.Set();
        var config = CommonOptions.Config();
        var json = CommonOptions.Json();
        var command = new Command("check", "Parse and type-check a model; every error is reported as file:line:col with the source line and a caret.")
        {
            model, set, config, json,
        };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(model)!;
            var asJson = parse.GetValue(json);
            try
            {
                var loaded = CommonOptions.Load(path, CommonOptions.ResolveConfig(parse.GetValue(config), null), parse.GetValue(set));
                var g = loaded.Graph;
                if (asJson)
                    cli.Out.WriteLine(JsonSerializer.Serialize(new { ok = true, model = g.Name, nodes = g.Nodes.Count, weights = g.Weights.Count(), diagnostics = Array.Empty<object>() }));
                else
                    cli.Out.WriteLine($"{path}: ok ({g.Name}: {g.Nodes.Count} IR nodes, {g.Weights.Count()} weights, outputs {string.Join(", ", g.Outputs.Select(o => $"{o.Key} {o.Value.Type}"))})");
                return McApp.Ok;
            }
            catch (CompilationFailedException e)
            {
                var items = e.Diagnostics.Sorted().ToList();
                if (asJson)
                    cli.Out.WriteLine(JsonSerializer.Serialize(new
                    {
                        ok = false,
                        diagnostics = items.Select(d => new { file = d.Span.File, line = d.Span.Line, column = d.Span.Column, severity = d.Severity.ToString().ToLowerInvariant(), code = d.Code, message = d.Message }),
                    }));
                else
                {
                    cli.Err.WriteLine(e.Diagnostics.Render());
                    cli.Err.WriteLine($"{items.Count} error{(items.Count == 1 ? "" : "s")}");
                }
                return McApp.UserError;
            }
        });
        return command;
    }
}
