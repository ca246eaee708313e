using System.Diagnostics;
using ModelCompiler.Cli;

namespace ModelCompiler.Tests.Cli;

/// <summary>Runs <c>mc</c> in-process (fast) or as the real executable (exit codes, no stack traces).</summary>
public static class CliRunner
{
    public sealed record Result(int ExitCode, string Out, string Err);

    public static Result Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = McApp.Run(args, stdout, stderr);
        return new Result(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Starts the built mc.dll with `dotnet`, as a user's shell would.</summary>
    public static Result RunProcess(params string[] args) => RunProcessWith(new Dictionary<string, string>(), args);

    /// <summary><see cref="RunProcess"/> with extra environment variables (e.g. DOTNET_EnableAVX512F=0).</summary>
    public static Result RunProcessWith(IReadOnlyDictionary<string, string> environment, params string[] args) => RunProcessWith(environment, 120, args);

    public static Result RunProcessWith(IReadOnlyDictionary<string, string> environment, int timeoutSeconds, params string[] args)
    {
        var mc = Path.Combine(AppContext.BaseDirectory, "mc.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = AppContext.BaseDirectory };
        foreach (var (key, value) in environment) start.Environment[key] = value;
        start.ArgumentList.Add(mc);
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var outTask = process.StandardOutput.ReadToEndAsync();
        var errTask = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeoutSeconds * 1000)) { process.Kill(); throw new TimeoutException($"mc did not finish in {timeoutSeconds} s"); }
        return new Result(process.ExitCode, outTask.Result, errTask.Result);
    }

    public static string Example(string name) => Path.Combine(AppContext.BaseDirectory, "examples", name);

    public static string Oracle(string family) => Path.Combine(AppContext.BaseDirectory, "oracles", family);

    public static string TempFile(string name) => Path.Combine(Path.GetTempPath(), $"mc-test-{Guid.NewGuid():N}-{name}");
}
