using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Tokenizers;
using ModelCompiler.Tests.Cli;
using ModelCompiler.Tests.Runtime;

namespace ModelCompiler.Tests.Reliability;

/// <summary>
/// Bounds before allocation: a file that claims an enormous length, count or shape is rejected at once, and what
/// the rejection costs is measured: bytes allocated by the reading thread in-process, and the peak resident set
/// of an `mc` process given the file (through /usr/bin/time, whose %M is the child's ru_maxrss).
/// </summary>
public sealed class BoundedMemoryTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Reading a tiny hostile file may allocate bookkeeping, never anything sized by what the file claims.</summary>
    private const long AllocationBound = 1 << 20;

    // ---- the hostile files ---------------------------------------------------------------------------

    private static byte[] Safetensors(string header, ulong? declaredLength = null, int data = 16)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var prefix = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, declaredLength ?? (ulong)h.Length);
        return [.. prefix, .. h, .. new byte[data]];
    }

    public static TheoryData<string, byte[], string> HostileSafetensors() => new()
    {
        { "header length 2^63", Safetensors("{}", declaredLength: 1UL << 63), "header length 9223372036854775808" },
        { "header length 2^64-1", Safetensors("{}", declaredLength: ulong.MaxValue), "header length" },
        { "shape product overflows int64", Safetensors("{\"t\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 16], \"data_offsets\": [0, 16]}}"), "overflows int64" },
        { "tensor claims 1 TiB", Safetensors("{\"t\": {\"dtype\": \"F32\", \"shape\": [262144, 1048576], \"data_offsets\": [0, 1099511627776]}}"), "past the end of the data region" },
        { "tensor claims int64.MaxValue elements", Safetensors("{\"t\": {\"dtype\": \"U8\", \"shape\": [9223372036854775807], \"data_offsets\": [0, 9223372036854775807]}}"), "past the end" },
        { "a 1000-dimension shape", Safetensors("{\"t\": {\"dtype\": \"F32\", \"shape\": [" + string.Join(",", Enumerable.Repeat("2", 1_000)) + "], \"data_offsets\": [0, 16]}}"), "overflows int64" },
    };

    private static byte[] Varint(ulong v)
    {
        var list = new List<byte>();
        do { byte b = (byte)(v & 0x7F); v >>= 7; list.Add(v != 0 ? (byte)(b | 0x80) : b); } while (v != 0);
        return list.ToArray();
    }

    public static TheoryData<string, string, byte[], string> HostileTokenizers() => new()
    {
        // A field that says 2^62 bytes follow.
        { "piece length 2^62", "tokenizer.model", [0x0A, .. Varint(1UL << 62), 0x41], "bytes are left" },
        // The normalizer's precompiled charsmap declaring a 4 GiB trie.
        { "charsmap trie size 2^32-1", "tokenizer.json",
            Encoding.UTF8.GetBytes("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}, \"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": \"" +
                Convert.ToBase64String([0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]) + "\"}}"), "precompiled_charsmap" },
        // An unk id far outside a one-entry vocabulary.
        { "unk_id 2^31-1", "tokenizer.json",
            Encoding.UTF8.GetBytes("{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", -1.0]], \"unk_id\": 2147483647}}"), "outside the vocabulary" },
    };

    // ---- in-process: bytes allocated while rejecting -------------------------------------------------

    private static long AllocatedWhile(Action action)
    {
        action(); // once to JIT and warm caches: the measured run counts only what this input costs
        long before = GC.GetAllocatedBytesForCurrentThread();
        action();
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    [Theory]
    [MemberData(nameof(HostileSafetensors))]
    public void SafetensorsRejectsAtOnceAllocatingLittle(string what, byte[] bytes, string fragment)
    {
        var path = _dir.File("hostile.safetensors");
        File.WriteAllBytes(path, bytes);
        long allocated = AllocatedWhile(() =>
        {
            var e = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path).Dispose());
            SafetensorsTestFiles.AssertOneLineNaming(e, "hostile.safetensors", fragment);
        });
        Assert.True(allocated < AllocationBound + 4L * bytes.Length, $"{what}: {allocated} bytes allocated");
    }

    [Theory]
    [MemberData(nameof(HostileTokenizers))]
    public void TokenizersRejectAtOnceAllocatingLittle(string what, string name, byte[] bytes, string fragment)
    {
        var path = _dir.File(name);
        File.WriteAllBytes(path, bytes);
        long allocated = AllocatedWhile(() =>
        {
            var e = Assert.ThrowsAny<McException>(() => TokenizerLoader.Load(path));
            SafetensorsTestFiles.AssertOneLineNaming(e, name, fragment);
        });
        Assert.True(allocated < AllocationBound, $"{what}: {allocated} bytes allocated");
    }

    [Fact]
    public void HugeTokenIdsDoNotSizeAllocations()
    {
        // A vocabulary of two tokens, one claiming id 2,000,000,000: an id-indexed array would be 16 GB.
        var path = _dir.File("tokenizer.json");
        File.WriteAllText(path, "{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0, \"a\": 2000000000}}}");
        ITokenizer? tokenizer = null;
        long allocated = AllocatedWhile(() => tokenizer = TokenizerLoader.Load(path));
        Assert.True(allocated < AllocationBound, $"{allocated} bytes allocated");
        Assert.Equal("a", tokenizer!.IdToToken(2_000_000_000));
        Assert.Null(tokenizer.IdToToken(1_999_999_999));
        Assert.Equal([2_000_000_000], tokenizer.Encode("a", addSpecialTokens: false));
    }

    // ---- out of process: exit code, one line, peak RSS of `mc` ---------------------------------------

    /// <summary>The CLR, the JIT and mc's own startup; anything sized by a hostile claim would be gigabytes.</summary>
    private const long PeakRssBoundKiB = 400 * 1024;

    private static (int ExitCode, string Err, long PeakKiB) RunMeasured(params string[] args)
    {
        var start = new ProcessStartInfo("/usr/bin/time") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = AppContext.BaseDirectory };
        // %M: the child's maximum resident set size in KiB, on a line of its own after mc's stderr; -q: no other line.
        foreach (var a in new[] { "-q", "-f", "mc-peak-rss-kib=%M", "dotnet", Path.Combine(AppContext.BaseDirectory, "mc.dll") }.Concat(args))
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var outTask = process.StandardOutput.ReadToEndAsync();
        var errTask = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(120_000)) { process.Kill(true); throw new TimeoutException("mc did not finish in 120 s"); }
        var lines = errTask.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var peak = lines.Single(l => l.StartsWith("mc-peak-rss-kib=", StringComparison.Ordinal));
        _ = outTask.Result;
        return (process.ExitCode, string.Join("\n", lines.Where(l => l != peak)), long.Parse(peak["mc-peak-rss-kib=".Length..]));
    }

    [Theory]
    [InlineData("header length 2^63")]
    [InlineData("tensor claims 1 TiB")]
    [InlineData("shape product overflows int64")]
    public void McEvalOnHostileWeightsFailsAtOnceWithSmallMemory(string which)
    {
        var bytes = (byte[])HostileSafetensors().Single(row => (string)row[0] == which)[1];
        // A real model folder whose weights file is hostile.
        var folder = Directory.CreateDirectory(_dir.File("model")).FullName;
        File.Copy(Path.Combine(CliRunner.Oracle("llama"), "config.json"), Path.Combine(folder, "config.json"), overwrite: true);
        File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), bytes);
        var (exit, err, peak) = RunMeasured("eval", folder, "--inputs", Path.Combine(CliRunner.Oracle("llama"), "reference.safetensors"), "--out", _dir.File("out.safetensors"));
        Assert.Equal(1, exit);
        Assert.Single(err.Split('\n'));
        Assert.Contains("model.safetensors", err);
        Assert.True(peak < PeakRssBoundKiB, $"{which}: mc peaked at {peak} KiB");
    }

    [Theory]
    [InlineData("piece length 2^62")]
    [InlineData("charsmap trie size 2^32-1")]
    public void McTokenizeOnHostileTokenizerFailsAtOnceWithSmallMemory(string which)
    {
        var row = HostileTokenizers().Single(r => (string)r[0] == which);
        var path = _dir.File((string)row[1]);
        File.WriteAllBytes(path, (byte[])row[2]);
        var (exit, err, peak) = RunMeasured("tokenize", path, "--text", "hello");
        Assert.Equal(1, exit);
        Assert.Single(err.Split('\n'));
        Assert.Contains((string)row[1], err);
        Assert.True(peak < PeakRssBoundKiB, $"{which}: mc peaked at {peak} KiB");
    }
}
