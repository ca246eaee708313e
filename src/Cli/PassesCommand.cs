using System.CommandLine;
using ModelCompiler.Passes;
using Spectre.Console;

namespace ModelCompiler.Cli;

/// <summary><c>mc passes</c>: the registered passes, generated from the registry.</summary>
internal static class PassesCommand
{
    public static Command Create(CliContext cli)
    {
        var command = new Command("passes", "List the compiler's passes and the interpreter pipeline.");
        command.SetAction(_ =>
        {
            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(cli.Out), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
            var table = new Table().AddColumn("pass").AddColumn("what it does").AddColumn("in interpreter pipeline");
            foreach (var p in PassManager.Registry)
                table.AddRow(Markup.Escape(p.Name), Markup.Escape(p.Description), PassManager.InterpreterPipeline.Contains(p.Name) ? "yes" : "no");
            console.Write(table);
            return McApp.Ok;
        });
        return command;
    }
}
