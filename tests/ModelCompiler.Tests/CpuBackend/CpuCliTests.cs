using ModelCompiler.Passes;
using System.Text.Json;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.Cli;

namespace ModelCompiler.Tests.CpuTarget;

/// <summary><c>mc compile</c> and <c>mc eval --target cpu</c> as a user runs them.</summary>
public sealed class CpuCliTests
{
    private static string Llama => CliRunner.Oracle("llama");

    private static string TempDir() => Directory.CreateTempSubdirectory("mc-compile-").FullName;

    [Fact]
    public void CompileWritesALoadableAssemblyItsManifestAndTheSource()
    {
        var dir = TempDir();
        try
        {
            var r = CliRunner.Run("compile", Llama, "-o", dir, "--emit", "cs", "--json");
            Assert.True(r.ExitCode == 0, r.Err);
            Assert.Equal("", r.Err);
            Assert.Equal(["Llama.cs", "Llama.dll", "Llama.manifest.json"], Directory.GetFiles(dir).Select(Path.GetFileName).Order());
            using var json = JsonDocument.Parse(r.Out);
            Assert.Equal("ModelCompiler.Generated.LlamaModel", json.RootElement.GetProperty("type").GetString());

            using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "Llama.manifest.json")));
            var m = manifest.RootElement;
            Assert.Equal("Llama", m.GetProperty("model").GetString());
            Assert.Equal("ModelCompiler.Generated.LlamaModel", m.GetProperty("type").GetString());
            Assert.Equal(64, m.GetProperty("hyperparameters").GetProperty("dim").GetInt64());
            Assert.Equal(119104, m.GetProperty("parameters").GetInt64());                         // oracle.json's count
            Assert.Equal("input_ids", m.GetProperty("inputs")[0].GetProperty("name").GetString());
            Assert.Equal("[\"batch\",\"seq\",256]", JsonSerializer.Serialize(m.GetProperty("outputs")[0].GetProperty("shape")));
            Assert.Equal(PassManager.FusionPipeline, m.GetProperty("passes").EnumerateArray().Select(p => p.GetProperty("name").GetString()!));
            Assert.True(m.GetProperty("kernel_calls").GetInt32() > 20);
            var source = File.ReadAllText(Path.Combine(dir, "Llama.cs"));
            Assert.Equal(CpuBackend.Sha256(source), m.GetProperty("source_sha256").GetString());

            // The .dll is all a program needs: load it, give it the checkpoint, run the oracle's input.
            var model = CpuBackend.Instantiate(File.ReadAllBytes(Path.Combine(dir, "Llama.dll")), m.GetProperty("type").GetString()!);
            using var store = WeightStore.Open(Llama);
            model.LoadWeights(store);
            using var reference = SafetensorsFile.Open(Path.Combine(Llama, "reference.safetensors"));
            var ids = reference.ReadInt64("input_ids");
            var logits = model.Forward(new Dictionary<string, (long[], long[])> { ["input_ids"] = (reference.Get("input_ids").Shape, ids) })["logits"];
            var expected = reference.ReadFloat32("logits");
            Assert.Equal(reference.Get("logits").Shape, logits.Shape);
            double maxRef = expected.Max(v => Math.Abs((double)v));
            Assert.True(expected.Zip(logits.Data).Max(p => Math.Abs((double)p.First - p.Second)) / maxRef <= 1e-4);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void CompilingTwiceGivesTheSameBytesAndSourceOnlyOnRequest()
    {
        var (a, b) = (TempDir(), TempDir());
        try
        {
            string[] sets = ["--set", "n_layers=1", "dim=32", "n_heads=2", "n_kv_heads=1", "ffn_dim=48", "vocab=50"];
            Assert.Equal(0, CliRunner.Run(["compile", CliRunner.Example("llama.arch"), "-o", a, .. sets]).ExitCode);
            var r = CliRunner.Run(["compile", CliRunner.Example("llama.arch"), "--out", b, .. sets]);
            Assert.Equal(0, r.ExitCode);
            Assert.StartsWith("Llama: wrote ", r.Out);
            Assert.Equal(["Llama.dll", "Llama.manifest.json"], Directory.GetFiles(a).Select(Path.GetFileName).Order());
            foreach (var f in new[] { "Llama.dll", "Llama.manifest.json" })
                Assert.Equal(File.ReadAllBytes(Path.Combine(a, f)), File.ReadAllBytes(Path.Combine(b, f)));
        }
        finally
        {
            Directory.Delete(a, true);
            Directory.Delete(b, true);
        }
    }

    [Fact]
    public void CompileErrors()
    {
        var file = CliRunner.TempFile("not-a-folder");
        File.WriteAllText(file, "");
        try
        {
            var r = CliRunner.Run("compile", CliRunner.Example("llama.arch"), "-o", file);
            Assert.Equal(1, r.ExitCode);
            Assert.Equal($"error: --out {file}: is a file, not a folder", r.Err.Trim());
            Assert.Equal(2, CliRunner.Run("compile", CliRunner.Example("llama.arch")).ExitCode);            // no --out
            Assert.Equal(2, CliRunner.Run("compile", CliRunner.Example("llama.arch"), "-o", "x", "--emit", "exe").ExitCode);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void EvalTargetCpuReportsItselfAndRefusesF64()
    {
        var output = CliRunner.TempFile("out.safetensors");
        var r = CliRunner.Run("eval", Llama, "--inputs", Path.Combine(Llama, "reference.safetensors"), "--out", output, "--target", "cpu", "--json");
        Assert.True(r.ExitCode == 0, r.Err);
        using (var json = JsonDocument.Parse(r.Out))
            Assert.Equal("cpu", json.RootElement.GetProperty("target").GetString());
        using (var file = SafetensorsFile.Open(output))
            Assert.Equal("cpu", file.Metadata["target"]);
        File.Delete(output);

        var f64 = CliRunner.Run("eval", Llama, "--inputs", Path.Combine(Llama, "reference.safetensors"), "--out", output, "--target", "cpu", "--precision", "f64");
        Assert.Equal(1, f64.ExitCode);
        Assert.Contains("--precision f64", f64.Err);
        var unknown = CliRunner.Run("eval", Llama, "--inputs", Path.Combine(Llama, "reference.safetensors"), "--out", output, "--target", "gpu");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("available: interpreter, cpu", unknown.Err);
        Assert.False(File.Exists(output));
    }
}
