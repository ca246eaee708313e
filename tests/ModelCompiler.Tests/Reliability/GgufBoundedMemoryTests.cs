using System.Text;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Gguf;
using ModelCompiler.Tests.Runtime;

namespace ModelCompiler.Tests.Reliability;

/// <summary>
/// Bounds before allocation for GGUF (as <see cref="BoundedMemoryTests"/> for the other formats): a file claiming an
/// enormous count, length or shape is rejected at once, allocating under 1 MiB on the reading thread.
/// </summary>
public sealed class GgufBoundedMemoryTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static byte[] U32(uint v) => BitConverter.GetBytes(v);

    private static byte[] U64(ulong v) => BitConverter.GetBytes(v);

    private static byte[] Str(string s) => [.. U64((ulong)Encoding.UTF8.GetByteCount(s)), .. Encoding.UTF8.GetBytes(s)];

    private static byte[] Header(ulong tensors, ulong kvs) => [.. "GGUF"u8, .. U32(3), .. U64(tensors), .. U64(kvs)];

    private static byte[] Tensor(string name, ulong[] dims, uint type, ulong offset) =>
        [.. Str(name), .. U32((uint)dims.Length), .. dims.SelectMany(U64), .. U32(type), .. U64(offset)];

    public static TheoryData<string, byte[], string> Hostile() => new()
    {
        { "tensor count 2^63", [.. Header(1UL << 63, 0), .. new byte[64]], "tensor count 9223372036854775808" },
        { "metadata count 2^64-1", [.. Header(0, ulong.MaxValue), .. new byte[64]], "metadata count" },
        { "a key of 2^62 bytes", [.. Header(0, 1), .. U64(1UL << 62), .. new byte[64]], "runs past the end" },
        { "an array of 2^60 u32", [.. Header(0, 1), .. Str("a"), .. U32(9), .. U32(4), .. U64(1UL << 60), .. new byte[64]], "cannot fit" },
        { "an array of 2^40 strings", [.. Header(0, 1), .. Str("a"), .. U32(9), .. U32(8), .. U64(1UL << 40), .. new byte[64]], "cannot fit" },
        { "a tensor of 1 TiB", [.. Header(1, 0), .. Tensor("t", [1UL << 20, 1UL << 18], 0, 0), .. new byte[64]], "outside the file's data region" },
        { "dimensions overflowing int64", [.. Header(1, 0), .. Tensor("t", [1UL << 32, 1UL << 32, 1UL << 32, 2], 0, 0), .. new byte[64]], "overflow" },
        { "a dimension of 2^64-1", [.. Header(1, 0), .. Tensor("t", [ulong.MaxValue], 0, 0), .. new byte[64]], "dimension 0" },
        { "a Q8_0 row of 2^62 blocks", [.. Header(1, 0), .. Tensor("t", [1UL << 62, 1], 8, 0), .. new byte[64]], "is too large" },
    };

    [Theory]
    [MemberData(nameof(Hostile))]
    public void RejectsAtOnceAllocatingLittle(string what, byte[] bytes, string fragment)
    {
        var path = _dir.File("hostile.gguf");
        File.WriteAllBytes(path, bytes);
        void Read()
        {
            var e = Assert.ThrowsAny<McException>(() => GgufWeights.Open(path).Dispose());
            Assert.Contains(path, e.Message);
            Assert.Contains(fragment, e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
        Read();   // JIT and caches first: the measured run counts only what this input costs
        long before = GC.GetAllocatedBytesForCurrentThread();
        Read();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 1 << 20, $"{what}: {allocated} bytes allocated while rejecting");
    }
}
