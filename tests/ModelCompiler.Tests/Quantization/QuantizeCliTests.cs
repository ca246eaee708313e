using ModelCompiler.Runtime;
using ModelCompiler.Tests.Cli;

namespace ModelCompiler.Tests.Quantization;

/// <summary>mc quantize and mc compile --quantize through the command line: the folder every command loads, and the errors.</summary>
public class QuantizeCliTests
{
    private static string Llama => CliRunner.Oracle("llama");

    private static float[] Logits(string file)
    {
        using var f = SafetensorsFile.Open(file);
        return f.ReadFloat32("logits");
    }

    private static double RelativeError(float[] reference, float[] actual) =>
        reference.Zip(actual).Max(p => Math.Abs(p.First - p.Second)) / reference.Max(Math.Abs);

    [Theory]
    [InlineData("int8", "cpu")]
    [InlineData("int4", "interpreter")]
    [InlineData("w8a8", "cpu")]
    public void QuantizedFolderRunsThroughEval(string scheme, string target)
    {
        var folder = CliRunner.TempFile("q");
        var outFile = CliRunner.TempFile("out.safetensors");
        try
        {
            var q = CliRunner.Run("quantize", Llama, "--quantize", scheme, "--group-size", "32", "-o", folder);
            Assert.True(q.ExitCode == 0, q.Err);
            Assert.Contains("15 linears quantized", q.Out);   // 2 layers × 7 + the LM head
            Assert.True(File.Exists(Path.Combine(folder, "quantization.json")));
            Assert.True(new FileInfo(Path.Combine(folder, "model.safetensors")).Length < new FileInfo(Path.Combine(Llama, "model.safetensors")).Length / 2);
            var e = CliRunner.Run("eval", folder, "--inputs", Path.Combine(Llama, "reference.safetensors"), "--out", outFile, "--target", target, "--generate", "4");
            Assert.True(e.ExitCode == 0, e.Err);
            double err = RelativeError(Logits(Path.Combine(Llama, "reference.safetensors")), Logits(outFile));
            Assert.True(err < (scheme == "int4" ? 0.35 : 0.06), $"{scheme}: relative logit error {err}");
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, true);
            File.Delete(outFile);
        }
    }

    /// <summary>
    /// --prune magnitude:2:4 writes the kept values and positions, not the dense weights, and mc eval gives the same
    /// logits with AVX-512 off and with every intrinsic off (the sparse kernel's AVX2 and scalar paths, in a subprocess).
    /// </summary>
    [Fact]
    public void TwoFourFolderIsStoredCompressedAndRunsOnEveryInstructionSet()
    {
        var folder = CliRunner.TempFile("s24");
        var outputs = new[] { "", "DOTNET_EnableAVX512F=0 DOTNET_EnableAVX512=0", "DOTNET_EnableHWIntrinsic=0" }.Select(_ => CliRunner.TempFile("s24.safetensors")).ToArray();
        try
        {
            var q = CliRunner.Run("quantize", Llama, "--prune", "magnitude:2:4", "-o", folder);
            Assert.True(q.ExitCode == 0, q.Err);
            using (var stored = SafetensorsFile.Open(Path.Combine(folder, "model.safetensors")))
            {
                var names = stored.Tensors.Select(t => t.Name).ToList();
                Assert.Contains("model.layers.0.mlp.down_proj.weight.values", names);
                Assert.Contains("model.layers.0.mlp.down_proj.weight.positions", names);
                Assert.DoesNotContain("model.layers.0.mlp.down_proj.weight", names);
                Assert.Contains("lm_head.weight", names);   // the LM head is not pruned
            }
            var settings = new[] { "", "DOTNET_EnableAVX512F=0 DOTNET_EnableAVX512=0", "DOTNET_EnableHWIntrinsic=0" };
            var logits = new List<float[]>();
            for (int i = 0; i < settings.Length; i++)
            {
                var env = settings[i].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(v => v.Split('='))
                    .ToDictionary(v => v[0], v => v[1], StringComparer.Ordinal);
                var e = CliRunner.RunProcessWith(env, "eval", folder, "--inputs", Path.Combine(Llama, "reference.safetensors"), "--out", outputs[i], "--target", "cpu");
                Assert.True(e.ExitCode == 0, e.Err);
                logits.Add(Logits(outputs[i]));
            }
            foreach (var other in logits.Skip(1)) Assert.True(RelativeError(logits[0], other) <= 1e-4, "logits differ between instruction sets");
            // pruning half the weights of the tiny random model moves the logits, but not beyond recognition
            Assert.True(RelativeError(Logits(Path.Combine(Llama, "reference.safetensors")), logits[0]) < 1.0);
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, true);
            foreach (var o in outputs) File.Delete(o);
        }
    }

    [Fact]
    public void CompileQuantizeWritesTheAssemblyBesideTheCompressedWeights()
    {
        var folder = CliRunner.TempFile("c");
        try
        {
            var c = CliRunner.Run("compile", Llama, "--quantize", "int4", "--group-size", "32", "-o", folder, "--emit", "cs");
            Assert.True(c.ExitCode == 0, c.Err);
            Assert.True(File.Exists(Path.Combine(folder, "quantization.json")));
            Assert.True(File.Exists(Path.Combine(folder, "model.safetensors")));
            var source = File.ReadAllText(Directory.GetFiles(folder, "*.cs").Single());
            Assert.Contains("QuantizedWeight.FromLoaded", source);
            Assert.DoesNotContain("PackedWeight.Pack(", source);   // every linear runs compressed: no fp32 weight is packed
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, true);
        }
    }

    [Fact]
    public void ErrorsAreOneLineAndNameTheProblem()
    {
        var folder = CliRunner.TempFile("e");
        var tokens = CliRunner.TempFile("tokens.safetensors");
        try
        {
            var r = CliRunner.Run("quantize", Llama, "--quantize", "int4", "--group-size", "48", "-o", folder);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("--group-size 48 does not divide the input width 64", r.Err);

            r = CliRunner.Run("quantize", Llama, "--quantize", "awq-int4", "-o", folder);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("needs --calibration", r.Err);

            SafetensorsWriter.Write(tokens, [TensorData.FromInt64("ids", [3], [1, 5000, 2])]);
            r = CliRunner.Run("quantize", Llama, "--quantize", "smoothquant", "--calibration", tokens, "-o", folder);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("token id 5000 at position 1 is outside the model's vocabulary", r.Err);

            r = CliRunner.Run("quantize", Llama, "--prune", "wanda:3:2", "-o", folder);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("--prune wanda:3:2", r.Err);

            // a corrupt folder: a broken manifest, then a manifest naming a tensor the weights lack
            Assert.Equal(0, CliRunner.Run("quantize", Llama, "--quantize", "int8", "-o", folder).ExitCode);
            var manifest = Path.Combine(folder, "quantization.json");
            var good = File.ReadAllText(manifest);
            File.WriteAllText(manifest, good[..(good.Length / 2)]);
            r = CliRunner.Run("eval", folder, "--inputs", Path.Combine(Llama, "reference.safetensors"), "--out", tokens);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("quantization.json: malformed JSON", r.Err);
            Assert.Single(r.Err.Trim().Split('\n'));
            File.WriteAllText(manifest, good.Replace("model.layers.0.mlp.up_proj.weight.codes", "missing.codes"));
            r = CliRunner.Run("eval", folder, "--inputs", Path.Combine(Llama, "reference.safetensors"), "--out", tokens);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("no tensor 'missing.codes'", r.Err);
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, true);
            File.Delete(tokens);
        }
    }
}
