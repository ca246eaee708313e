using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using CsCheck;
using ModelCompiler.Frontend;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Tokenizers;
using ModelCompiler.Tests.Runtime;
using ModelCompiler.Tests.Tokenizers;
using static ModelCompiler.Tests.Reliability.HostileMutations;

namespace ModelCompiler.Tests.Reliability;

/// <summary>
/// Property tests, one per file format a model folder carries: thousands of random hostile edits of small valid
/// files (CsCheck draws them, shrinks a failure to its smallest edit and prints the seed to replay it). Every
/// edited file is either read completely or rejected with the documented user-error type on one line that
/// names the file. Iteration counts keep each test to a few seconds on two cores.
/// </summary>
public sealed class ReaderPropertyTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    // Single-threaded: each sample writes its file to the same scratch path.
    private const int Threads = 1;

    // ---- safetensors ---------------------------------------------------------------------------------

    private byte[] SmallSafetensors()
    {
        var path = _dir.File("seed.safetensors");
        SafetensorsTestFiles.WriteSmallValidFile(path);
        return File.ReadAllBytes(path);
    }

    /// <summary>The file as its three parts, so a header edit can keep (or deliberately break) the length prefix.</summary>
    private static (byte[] Header, byte[] Data) Split(byte[] file)
    {
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        return (file[8..(8 + headerLength)], file[(8 + headerLength)..]);
    }

    private static byte[] Join(byte[] header, byte[] data)
    {
        var prefix = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
        return [.. prefix, .. header, .. data];
    }

    [Fact]
    public void SafetensorsEditsAreReadOrRejectedNamingTheFile()
    {
        var (header, data) = Split(SmallSafetensors());
        var path = _dir.File("mutant.safetensors");
        int accepted = 0, total = 0;
        // Header edits (JSON-aware, length prefix kept consistent) then raw edits anywhere in the file.
        Gen.Select(JsonEdits, ByteEdits.Array[0, 1]).Sample((headerEdits, fileEdits) =>
        {
            var bytes = Join(Apply(header, headerEdits), data);
            foreach (var edits in fileEdits) bytes = Apply(bytes, edits);
            File.WriteAllBytes(path, bytes);
            total++;
            if (AcceptedOrRejectedCleanly<ModelFormatException>(() => SafetensorsTestFiles.OpenAndReadAll(path), "mutant.safetensors")) accepted++;
        }, iter: 2000, threads: Threads, print: p => string.Join(", ", p.Item1) + " | " + string.Join(", ", p.Item2.SelectMany(e => e)));
        // The edits must leave some files readable, or the test would only ever exercise the first check.
        Assert.InRange(accepted, 1, total - 1);
    }

    [Fact]
    public void SafetensorsHeaderValuesOfEveryHostileKindAreRejected()
    {
        // Each shape/offset/dtype value replaced by each hostile JSON value: an exhaustive grid, not random.
        var (header, data) = Split(SmallSafetensors());
        var root = JsonNode.Parse(header)!.AsObject();
        var path = _dir.File("grid.safetensors");
        foreach (var (tensor, _) in root.Where(p => p.Key != "__metadata__").ToList())
            foreach (var field in new[] { "dtype", "shape", "data_offsets" })
                foreach (var value in JsonValues)
                {
                    // Spliced as text: System.Text.Json will not carry some of these values (lone surrogates) itself.
                    var copy = JsonNode.Parse(header)!.AsObject();
                    copy[tensor]![field] = "\u0001hostile\u0001";
                    var text = copy.ToJsonString().Replace("\"\\u0001hostile\\u0001\"", value);
                    Assert.Contains(value, text);
                    File.WriteAllBytes(path, Join(Encoding.UTF8.GetBytes(text), data));
                    AcceptedOrRejectedCleanly<ModelFormatException>(() => SafetensorsTestFiles.OpenAndReadAll(path), "grid.safetensors");
                }
    }

    // ---- config.json ---------------------------------------------------------------------------------

    private static readonly string[] ConfigSeeds = ["llama", "gpt2", "t5", "mixtral_moe", "falcon_mqa"];

    [Fact]
    public void ConfigEditsAreImportedOrRejectedNamingTheFile()
    {
        var seeds = ConfigSeeds.Select(f => File.ReadAllBytes(Path.Combine(CliRunnerOracle(f), "config.json"))).ToArray();
        var folder = Directory.CreateDirectory(_dir.File("hf")).FullName;
        var config = Path.Combine(folder, "config.json");
        int accepted = 0, total = 0;
        Gen.Select(Gen.Int[0, seeds.Length - 1], JsonEdits).Sample((seed, edits) =>
        {
            File.WriteAllBytes(config, Apply(seeds[seed], edits));
            total++;
            if (AcceptedOrRejectedCleanly<McException>(() => HuggingFaceImport.Load(folder, new Dictionary<string, string>()), "config.json", diagnosticsMayFollow: true)) accepted++;
        }, iter: 250, threads: Threads, print: p => $"{ConfigSeeds[p.Item1]}: {string.Join(", ", p.Item2)}");
        Assert.InRange(accepted, 1, total - 1);
    }

    [Fact]
    public void ConfigTruncatedAtEveryByteIsRejectedNamingTheFile()
    {
        var whole = File.ReadAllBytes(Path.Combine(CliRunnerOracle("llama"), "config.json"));
        var folder = Directory.CreateDirectory(_dir.File("cut")).FullName;
        for (int length = 0; length < whole.Length; length++)
        {
            File.WriteAllBytes(Path.Combine(folder, "config.json"), whole[..length]);
            var trailingWhitespace = whole[length..].All(b => b is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t');
            var accepted = AcceptedOrRejectedCleanly<McException>(() => HuggingFaceImport.Load(folder, new Dictionary<string, string>()), "config.json", diagnosticsMayFollow: true);
            Assert.Equal(trailingWhitespace, accepted);
        }
    }

    private static string CliRunnerOracle(string family) => Path.Combine(AppContext.BaseDirectory, "oracles", family);

    // ---- tokenizer.json ------------------------------------------------------------------------------

    /// <summary>The shared tokenizers with their vocabularies cut to a few hundred entries (mutating is per byte).</summary>
    private static byte[] SmallTokenizerJson(string kind)
    {
        var j = JsonNode.Parse(File.ReadAllText(Path.Combine(TokenizerOracleTests.Folder(kind), "tokenizer.json")))!;
        var model = j["model"]!.AsObject();
        switch (model["type"]!.GetValue<string>())
        {
            case "Unigram":
                var vocab = model["vocab"]!.AsArray();
                while (vocab.Count > 200) vocab.RemoveAt(vocab.Count - 1);
                break;
            default:
                var keep = model["vocab"]!.AsObject().Take(200).Select(p => p.Key).ToHashSet();
                foreach (var key in model["vocab"]!.AsObject().Select(p => p.Key).Where(k => !keep.Contains(k)).ToList())
                    model["vocab"]!.AsObject().Remove(key);
                if (model["merges"] is JsonArray merges)
                {
                    string[] Pair(JsonNode m) => m is JsonArray a ? [a[0]!.GetValue<string>(), a[1]!.GetValue<string>()] : m.GetValue<string>().Split(' ');
                    var kept = merges.Where(m => Pair(m!) is var p && p.All(keep.Contains) && keep.Contains(string.Concat(p))).Select(m => m!.DeepClone()).ToArray();
                    model["merges"] = new JsonArray(kept);
                }
                break;
        }
        return Encoding.UTF8.GetBytes(j.ToJsonString());
    }

    private static readonly string[] Probes = ["Hello, world!", "  naïve café 123\n\t", "大语言 🚀 x", ""];

    private static void LoadAndUse(string path)
    {
        var t = TokenizerLoader.Load(path);
        foreach (var text in Probes)
        {
            var ids = t.Encode(text);
            t.Decode(ids);
            t.Tokens(ids);
        }
    }

    [Fact]
    public void TokenizerJsonEditsAreLoadedOrRejectedNamingTheFile()
    {
        string[] kinds = ["bpe_bytelevel", "wordpiece_bert", "unigram_t5"];
        var seeds = kinds.Select(SmallTokenizerJson).ToArray();
        var path = _dir.File("tokenizer.json");
        int accepted = 0, total = 0;
        Gen.Select(Gen.Int[0, seeds.Length - 1], JsonEdits).Sample((seed, edits) =>
        {
            File.WriteAllBytes(path, Apply(seeds[seed], edits));
            total++;
            if (AcceptedOrRejectedCleanly<McException>(() => LoadAndUse(path), "tokenizer.json")) accepted++;
        }, iter: 800, threads: Threads, print: p => $"{kinds[p.Item1]}: {string.Join(", ", p.Item2)}");
        Assert.InRange(accepted, 1, total - 1);
    }

    // ---- SentencePiece .model ------------------------------------------------------------------------

    // Enough for the three control pieces and the 256 byte-fallback pieces the trainer spec requires.
    private const int SentencePiecePieces = 300;

    /// <summary>A real .model with all but its first <paramref name="pieces"/> pieces dropped (top-level field 1).</summary>
    internal static byte[] SmallSentencePiece(string kind, int pieces, bool keepNormalizer, bool keepTrainerSpec = true)
    {
        var data = File.ReadAllBytes(Path.Combine(TokenizerOracleTests.Folder(kind), "tokenizer.model"));
        var kept = new List<byte>();
        int i = 0, seen = 0;
        while (i < data.Length)
        {
            int start = i;
            ulong key = Varint(data, ref i);
            switch (key & 7)
            {
                case 0: Varint(data, ref i); break;
                case 1: i += 8; break;
                case 2: int length = (int)Varint(data, ref i); i += length; break;
                case 5: i += 4; break;
                default: throw new InvalidDataException("unexpected wire type in the test's own seed");
            }
            int field = (int)(key >> 3);
            if (field == 1 && ++seen > pieces) continue;
            if (field == 3 && !keepNormalizer) continue;
            if (field == 2 && !keepTrainerSpec) continue;
            kept.AddRange(data[start..i]);
        }
        return kept.ToArray();
    }

    private static ulong Varint(byte[] data, ref int i)
    {
        ulong v = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte b = data[i++];
            v |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return v;
        }
    }

    [Fact]
    public void SentencePieceEditsAreLoadedOrRejectedNamingTheFile()
    {
        string[] kinds = ["sentencepiece_bpe", "sentencepiece_unigram"];
        var seeds = kinds.Select(k => SmallSentencePiece(k, SentencePiecePieces, keepNormalizer: false)).ToArray();
        var path = _dir.File("tokenizer.model");
        int accepted = 0, total = 0;
        Gen.Select(Gen.Int[0, seeds.Length - 1], ByteEdits).Sample((seed, edits) =>
        {
            File.WriteAllBytes(path, Apply(seeds[seed], edits));
            total++;
            if (AcceptedOrRejectedCleanly<McException>(() => LoadAndUse(path), "tokenizer.model")) accepted++;
        }, iter: 1000, threads: Threads, print: p => $"{kinds[p.Item1]}: {string.Join(", ", p.Item2)}");
        Assert.InRange(accepted, 1, total - 1);
    }

    [Fact]
    public void SentencePieceTruncatedAtEveryByteIsLoadedOrRejectedNamingTheFile()
    {
        // Without its trainer spec (so without byte fallback's 256 byte pieces) 40 pieces load: a file of ~700 bytes.
        var whole = SmallSentencePiece("sentencepiece_unigram", 40, keepNormalizer: false, keepTrainerSpec: false);
        var path = _dir.File("tokenizer.model");
        for (int length = 0; length <= whole.Length; length++)
        {
            File.WriteAllBytes(path, whole[..length]);
            // A protobuf cut between two fields is still well-formed, so a cut file may load; it must not crash.
            bool loaded = AcceptedOrRejectedCleanly<McException>(() => LoadAndUse(path), "tokenizer.model");
            if (length == whole.Length) Assert.True(loaded);
        }
    }
}
