using System.Diagnostics;
using ModelCompiler.Tests.Cli;
using ModelCompiler.Tests.Runtime;

namespace ModelCompiler.Tests.Reliability;

/// <summary>
/// Builds can be cached and audited: two separate `mc compile` processes, with different output folders, working
/// folders and environments, write byte-identical generated source, assembly and manifest. (CpuCliTests compares
/// two in-process compiles; CpuCodegenTests two emits.)
/// </summary>
public sealed class DeterminismTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static (int ExitCode, string Err) RunMc(string workingDirectory, IDictionary<string, string> env, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workingDirectory };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "mc.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (k, v) in env) start.Environment[k] = v;
        using var process = Process.Start(start)!;
        var outTask = process.StandardOutput.ReadToEndAsync();
        var errTask = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(180_000)) { process.Kill(true); throw new TimeoutException("mc did not finish in 180 s"); }
        _ = outTask.Result;
        return (process.ExitCode, errTask.Result);
    }

    [Fact]
    public void TwoProcessesCompileTheSameModelToTheSameBytes()
    {
        // A Hugging Face folder (config.json import) at the oracle's tiny size.
        var model = CliRunner.Oracle("llama");
        var outputs = new[] { "a", "deeper/b" }.Select(d => Path.Combine(_dir.Path, d)).ToArray();
        var environments = new[]
        {
            new Dictionary<string, string> { ["TZ"] = "UTC", ["LANG"] = "C" },
            new Dictionary<string, string> { ["TZ"] = "Asia/Kolkata", ["LANG"] = "de_DE.UTF-8", ["DOTNET_TieredCompilation"] = "0" },
        };
        var workDirs = new[] { AppContext.BaseDirectory, Directory.CreateDirectory(Path.Combine(_dir.Path, "elsewhere")).FullName };
        for (int i = 0; i < 2; i++)
        {
            var (exit, err) = RunMc(workDirs[i], environments[i], "compile", model, "-o", outputs[i], "--emit", "cs");
            Assert.True(exit == 0, err);
        }
        var names = Directory.GetFiles(outputs[0]).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(names, Directory.GetFiles(outputs[1]).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Contains(names, n => n!.EndsWith(".cs", StringComparison.Ordinal));
        Assert.Contains(names, n => n!.EndsWith(".dll", StringComparison.Ordinal));
        Assert.Contains(names, n => n!.EndsWith(".manifest.json", StringComparison.Ordinal));
        foreach (var name in names)
            Assert.True(File.ReadAllBytes(Path.Combine(outputs[0], name!)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(outputs[1], name!))),
                $"{name} differs between the two compiles");
    }
}
