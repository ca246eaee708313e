using System.CommandLine;
using ModelCompiler.Runtime;

namespace ModelCompiler.Cli;

/// <summary>
/// The <c>mc</c> command line. Exit codes: 0 success, 1 a user error (bad model, file or option; one
/// line, or the DSL's diagnostics), 2 a usage error, 70 an internal error (a bug: please report it).
/// </summary>
public static class McApp
{
    public const int Ok = 0, UserError = 1, UsageError = 2, InternalError = 70;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("mc: the ModelCompiler command line. Compiles transformer architectures written in the .arch DSL.");
        var context = new CliContext(stdout, stderr);
        root.Add(CheckCommand.Create(context));
        root.Add(PrintIrCommand.Create(context));
        root.Add(EvalCommand.Create(context));
        root.Add(CompileCommand.Create(context));
        root.Add(BenchCommand.Create(context));
        root.Add(DemoCommand.Create(context));
        root.Add(StatsCommand.Create(context));
        root.Add(ImportHfCommand.Create(context));
        root.Add(GraphCommand.Create(context));
        root.Add(PassesCommand.Create(context));
        root.Add(TokenizeCommand.Create(context));
        root.Add(RunCommand.Create(context));
        root.Add(PerplexityCommand.Create(context));
        root.Add(QuantizeCommand.Create(context));
        root.Add(KernelsCommand.Create(context));

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors) stderr.WriteLine($"error: {error.Message}");
            stderr.WriteLine("Run 'mc --help' (or 'mc <command> --help') for usage.");
            return UsageError;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        }
        catch (McException e)
        {
            stderr.WriteLine(e.Message.Contains('\n') ? e.Message : $"error: {e.Message}");
            return UserError;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            stderr.WriteLine($"internal error: {e.GetType().Name}: {e.Message.Split('\n')[0]} (this is a bug in mc; please report it with the command line)");
            if (Environment.GetEnvironmentVariable("MC_DEBUG") == "1") stderr.WriteLine(e);
            return InternalError;
        }
    }
}

/// <summary>Where commands write: stdout for results, stderr for progress and errors.</summary>
public sealed record CliContext(TextWriter Out, TextWriter Err);
