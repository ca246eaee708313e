using CsCheck;
using ModelCompiler.Backends.Quantization;
using ModelCompiler.Frontend;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.Cli;
using ModelCompiler.Tests.Runtime;
using static ModelCompiler.Tests.Reliability.HostileMutations;

namespace ModelCompiler.Tests.Reliability;

/// <summary>
/// The newest reader: a folder written by <c>mc quantize</c>. Its quantization.json is edited at random (CsCheck) and
/// truncated at every byte; reading the manifest and rewriting a freshly imported model by it either succeeds or
/// fails with the documented user error on one line naming quantization.json. (Its model.safetensors is a plain
/// safetensors file, covered by <see cref="ReaderPropertyTests"/>.)
/// </summary>
public sealed class QuantizedFolderPropertyTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string QuantizedLlama(string scheme)
    {
        var folder = _dir.File("q-" + scheme);
        var r = CliRunner.Run("quantize", CliRunner.Oracle("llama"), "--quantize", scheme, "--group-size", "32", "-o", folder);
        Assert.True(r.ExitCode == 0, r.Err);
        return folder;
    }

    /// <summary>What every command does with the folder before it reads a weight (CommonOptions' quantized path).</summary>
    private static void Load(string folder)
    {
        var manifest = QuantizedFolder.ReadManifest(folder);
        if (manifest.Model.Kind != "hf") return;   // an .arch source is a path on the machine that wrote it
        var graph = HuggingFaceImport.Load(folder, manifest.Model.Sets).Graph;
        QuantizedFolder.Apply(graph, manifest, folder);
    }

    [Theory]
    [InlineData("int4")]
    [InlineData("w8a8")]
    public void ManifestEditsAreLoadedOrRejectedNamingTheFile(string scheme)
    {
        var folder = QuantizedLlama(scheme);
        var path = Path.Combine(folder, QuantizedFolder.ManifestName);
        var original = File.ReadAllBytes(path);
        Load(folder);   // the unedited folder loads
        int accepted = 0, total = 0;
        JsonEdits.Sample(edits =>
        {
            File.WriteAllBytes(path, Apply(original, edits));
            total++;
            if (AcceptedOrRejectedCleanly<McException>(() => Load(folder), QuantizedFolder.ManifestName, diagnosticsMayFollow: true)) accepted++;
        }, iter: 400, threads: 1, print: e => string.Join(", ", e));
        Assert.InRange(accepted, 1, total - 1);
    }

    [Fact]
    public void ManifestTruncatedAtEveryByteIsRejectedNamingTheFile()
    {
        var folder = QuantizedLlama("int8");
        var path = Path.Combine(folder, QuantizedFolder.ManifestName);
        var whole = File.ReadAllBytes(path);
        for (int length = 0; length < whole.Length; length += Math.Max(1, whole.Length / 400))
        {
            File.WriteAllBytes(path, whole[..length]);
            bool accepted = AcceptedOrRejectedCleanly<McException>(() => Load(folder), QuantizedFolder.ManifestName, diagnosticsMayFollow: true);
            Assert.Equal(whole[length..].All(b => b is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t'), accepted);
        }
    }
}
