using System.Diagnostics;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.Cli;

namespace ModelCompiler.Tests.CpuTarget;

/// <summary>
/// examples/EmbedApp against a model that <c>mc compile</c> wrote to disk, with weights from a safetensors file: its
/// logic in-process (logits compared with the reference interpreter's), and the project itself built with
/// <c>dotnet build</c> and run as a user would.
/// </summary>
public sealed class EmbedAppTests : IDisposable
{
    private static readonly string[] Tiny = ["--set", "dim=32", "n_layers=2", "n_heads=4", "n_kv_heads=2", "ffn_dim=48", "vocab=64"];
    private static readonly long[] Ids = [1, 5, 9, 33];
    private readonly string _dir = Directory.CreateTempSubdirectory("mc-embed-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (string Dll, string Weights) CompileTiny()
    {
        var compiled = CliRunner.Run(["compile", CliRunner.Example("llama.arch"), .. Tiny, "-o", Path.Combine(_dir, "out")]);
        Assert.True(compiled.ExitCode == 0, compiled.Err);
        var weights = Path.Combine(_dir, "model.safetensors");
        var saved = CliRunner.Run(["bench", CliRunner.Example("llama.arch"), .. Tiny, "--save-weights", weights]);
        Assert.True(saved.ExitCode == 0, saved.Err);
        return (Path.Combine(_dir, "out", "Llama.dll"), weights);
    }

    [Fact]
    public void AppLogicRunsTheCompiledDll()
    {
        var (dll, weights) = CompileTiny();
        var model = Embed.Load(dll);
        Assert.Equal("Llama", model.Name);
        var (logits, argmax) = Embed.Run(model, weights, Ids);
        Assert.Equal(64, logits.Length);
        Assert.Equal(Array.IndexOf(logits, logits.Max()), argmax);

        // The same weights through the reference interpreter, fed from the same file.
        using var store = WeightStore.Open(weights);
        var sets = Tiny[1..].Select(s => s.Split('=')).ToDictionary(kv => kv[0], kv => kv[1], StringComparer.Ordinal);
        var loaded = ModelCompiler.Frontend.ModelFrontend.Load(CliRunner.Example("llama.arch"), null, sets);
        var reference = new ModelCompiler.Backends.Reference.Interpreter(loaded.Graph).Run(
            new Dictionary<string, ModelCompiler.Backends.Reference.RefTensor> { ["input_ids"] = ModelCompiler.Backends.Reference.RefTensor.FromInts([1, Ids.Length], Ids) },
            (name, type) => ModelCompiler.Backends.Reference.RefTensor.FromFloats(type.Shape.Select(d => d.Size).ToArray(), store.ReadFloat32(name)))["logits"].ToFloat32();
        var last = reference[^64..];
        double scale = last.Max(v => Math.Abs(v)), diff = last.Zip(logits, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(diff <= 1e-4 * scale, $"EmbedApp logits differ from the interpreter's by {diff / scale:E3} (relative)");
    }

    [Fact]
    public void ProjectBuildsAgainstTheCompiledDllAndRuns()
    {
        var (dll, weights) = CompileTiny();
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "ModelCompiler.sln"))) root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("repository root not found");
        var app = Path.Combine(_dir, "app");
        var build = Dotnet(["build", Path.Combine(root, "examples", "EmbedApp", "EmbedApp.csproj"), "-o", app, "-v", "q", "-nologo"]);
        Assert.True(build.ExitCode == 0, build.Out + build.Err);
        var run = Dotnet([Path.Combine(app, "EmbedApp.dll"), dll, weights, .. Ids.Select(i => i.ToString())]);
        Assert.True(run.ExitCode == 0, run.Out + run.Err);

        var model = CpuBackend.Instantiate(File.ReadAllBytes(dll), "ModelCompiler.Generated.LlamaModel");   // in its own load context
        var (_, argmax) = Embed.Run(model, weights, Ids);
        Assert.Contains($"argmax: {argmax}", run.Out);
        Assert.Contains("logits[64] of the last token", run.Out);
    }

    private static CliRunner.Result Dotnet(string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var outTask = process.StandardOutput.ReadToEndAsync();
        var errTask = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(600_000)) { process.Kill(true); throw new TimeoutException("dotnet did not finish in 600 s"); }
        return new CliRunner.Result(process.ExitCode, outTask.Result, errTask.Result);
    }
}
