using System.Buffers.Binary;
using CsCheck;
using ModelCompiler.Backends;
using ModelCompiler.Backends.Quantization;
using ModelCompiler.Frontend;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Gguf;
using ModelCompiler.Runtime.Tokenizers;
using ModelCompiler.Tests.Runtime;
using static ModelCompiler.Tests.Reliability.HostileMutations;

namespace ModelCompiler.Tests.Reliability;

/// <summary>
/// The GGUF reader against hostile files: random byte edits (CsCheck), every numeric field of the header set to
/// hostile values (huge lengths and counts, overflowing dimensions, unknown types, misaligned and out-of-file
/// offsets, NaN/Inf hyperparameters), duplicated entries, and truncation at every byte. Each file is read as every
/// command reads one (tensor table, every tensor, tokenizer, hyperparameters, elaboration, weight binding) and is
/// either accepted or rejected with <see cref="McException"/> on one line naming the file. The seeds are tiny
/// files llama.cpp's gguf-py wrote (fuzz/tools/make_gguf_seeds.py).
/// </summary>
public sealed class GgufPropertyTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static byte[] Seed(string name) => File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Data", "gguf", name));

    private static readonly string[] Seeds = ["tiny-q4_0.gguf", "tiny-tokenizer-gpt2.gguf"];

    /// <summary>What the commands do with a .gguf model before running it.</summary>
    private static void Load(string path)
    {
        bool isModel;
        using (var weights = GgufWeights.Open(path))
        {
            foreach (var t in weights.Tensors)
            {
                weights.ReadFloat32(t.Name);
                if (!t.DType.IsFloat()) weights.ReadInt64(t.Name);
            }
            if (weights.File.Has("tokenizer.ggml.model"))
            {
                var tokenizer = GgufTokenizer.Load(weights.File);
                tokenizer.Decode(tokenizer.Encode("Hello, wörld 12 ab"));
            }
            isModel = weights.File.Tensors.Count > 0;
        }
        if (!isModel) return;
        var graph = GgufImport.Load(path, new Dictionary<string, string>()).Graph;
        GgufQuantized.Apply(graph, path);
        using var store = WeightStore.Open(path);
        WeightBinding.Validate(graph, store);
    }

    private bool Check(byte[] bytes, string name = "mutant.gguf")
    {
        var path = _dir.File(name);
        File.WriteAllBytes(path, bytes);
        return AcceptedOrRejectedCleanly<McException>(() => Load(path), name, diagnosticsMayFollow: true);
    }

    [Fact]
    public void SeedsLoad()
    {
        foreach (var seed in Seeds) Assert.True(Check(Seed(seed)), seed);
    }

    [Fact]
    public void RandomEditsAreReadOrRejectedNamingTheFile()
    {
        var seeds = Seeds.Select(Seed).ToArray();
        int accepted = 0, total = 0;
        Gen.Select(Gen.Int[0, seeds.Length - 1], ByteEdits).Sample((seed, edits) =>
        {
            total++;
            if (Check(Apply(seeds[seed], edits))) accepted++;
        }, iter: 1500, threads: 1, print: p => $"{Seeds[p.Item1]}: {string.Join(", ", p.Item2)}");
        Assert.InRange(accepted, 1, total - 1);
    }

    /// <summary>Hostile values for a u64 field (lengths, counts, dimensions, offsets) and a u32 one (types, ranks).</summary>
    private static readonly ulong[] HostileU64 = [0, 1, 3, 31, 33, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1UL << 40, long.MaxValue, 1UL << 63, ulong.MaxValue, 0x0000_0001_0000_0001];
    private static readonly uint[] HostileU32 = [0, 1, 2, 3, 5, 9, 12, 13, 31, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF];
    private static readonly float[] HostileF32 = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, 0, -1, 1e-45f, float.MaxValue];

    [Fact]
    public void EveryHeaderFieldSetToEveryHostileValueIsReadOrRejected()
    {
        foreach (var seedName in Seeds)
        {
            var seed = Seed(seedName);
            var fields = GgufFields.Of(seed);
            Assert.True(fields.Count > 20, $"{seedName}: the walker found {fields.Count} fields");
            foreach (var f in fields)
            {
                if (f.Size == 8)
                    foreach (var v in HostileU64)
                    {
                        var b = (byte[])seed.Clone();
                        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(f.Offset), v);
                        Check(b);
                    }
                else if (f.IsFloat)
                    foreach (var v in HostileF32)
                    {
                        var b = (byte[])seed.Clone();
                        BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(f.Offset), v);
                        Check(b);
                    }
                else
                    foreach (var v in HostileU32)
                    {
                        var b = (byte[])seed.Clone();
                        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(f.Offset, 4), v);
                        Check(b);
                    }
            }
        }
    }

    [Fact]
    public void DuplicatedEntriesAreRejected()
    {
        var seed = Seed("tiny-q4_0.gguf");
        foreach (var (start, end, countOffset) in GgufFields.Entries(seed))
        {
            // The entry twice, its count one higher: a key or tensor name given twice is ambiguous.
            byte[] b = [.. seed[..end], .. seed[start..end], .. seed[end..]];
            BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(countOffset), BinaryPrimitives.ReadUInt64LittleEndian(seed.AsSpan(countOffset)) + 1);
            Assert.False(Check(b), $"entry at {start} given twice was accepted");
        }
    }

    [Fact]
    public void TruncatedAtEveryByteIsRejectedNamingTheFile()
    {
        foreach (var seedName in Seeds)
        {
            var whole = Seed(seedName);
            var tensorsEnd = GgufFields.DataEnd(whole);
            for (int length = 0; length < whole.Length; length++)
            {
                bool accepted = Check(whole[..length]);
                // Only the padding after the last tensor's data may go.
                if (length < tensorsEnd) Assert.False(accepted, $"{seedName} cut to {length} bytes was accepted");
            }
        }
    }

    /// <summary>
    /// A minimal walker of the GGUF layout written for this test (not the reader under test): where each numeric field
    /// of the header is, where each metadata entry and tensor info starts and ends, and where tensor data ends.
    /// </summary>
    private static class GgufFields
    {
        public sealed record Field(int Offset, int Size, bool IsFloat);

        public static List<Field> Of(byte[] b) => Walk(b).Fields;

        public static List<(int Start, int End, int CountOffset)> Entries(byte[] b) => Walk(b).Entries;

        public static long DataEnd(byte[] b) => Walk(b).DataEnd;

        private static (List<Field> Fields, List<(int, int, int)> Entries, long DataEnd) Walk(byte[] b)
        {
            var fields = new List<Field>();
            var entries = new List<(int, int, int)>();
            int at = 8;
            ulong U64() { fields.Add(new(at, 8, false)); var v = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(at)); at += 8; return v; }
            uint U32(bool isFloat = false) { fields.Add(new(at, 4, isFloat)); var v = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at)); at += 4; return v; }
            void Str() { int length = (int)U64(); at += length; }   // not `at += (int)U64()`: that reads `at` before U64 moves it
            void Value(uint type)
            {
                switch (type)
                {
                    case 0 or 1 or 7: at += 1; break;
                    case 2 or 3: at += 2; break;
                    case 4 or 5: U32(); break;
                    case 6: U32(isFloat: true); break;
                    case 8: Str(); break;
                    case 10 or 11 or 12: U64(); break;
                    case 9:
                        uint element = U32();
                        ulong count = U64();
                        for (ulong i = 0; i < count; i++)
                            if (element == 8) at += (int)BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(at)) + 8;   // elements' lengths: not edited (too many)
                            else at += element switch { 0 or 1 or 7 => 1, 2 or 3 => 2, 4 or 5 or 6 => 4, _ => 8 };
                        break;
                }
            }
            int tensorCountAt = at; ulong tensors = U64();
            int kvCountAt = at; ulong kvs = U64();
            for (ulong i = 0; i < kvs; i++)
            {
                int start = at;
                Str();
                Value(U32());
                entries.Add((start, at, kvCountAt));
            }
            long alignment = 32, dataEnd = 0;
            var offsets = new List<(ulong Offset, long Bytes)>();
            for (ulong i = 0; i < tensors; i++)
            {
                int start = at;
                Str();
                uint dims = U32();
                long elements = 1;
                for (uint d = 0; d < dims; d++) elements *= (long)U64();
                uint type = U32();
                ulong offset = U64();
                offsets.Add((offset, type switch { 0 => elements * 4, 1 or 30 => elements * 2, 8 => elements / 32 * 34, 2 => elements / 32 * 18, _ => 0 }));
                entries.Add((start, at, tensorCountAt));
            }
            long dataStart = (at + alignment - 1) / alignment * alignment;
            foreach (var (offset, bytes) in offsets) dataEnd = Math.Max(dataEnd, dataStart + (long)offset + bytes);
            return (fields, entries, Math.Max(dataEnd, at));
        }
    }
}
