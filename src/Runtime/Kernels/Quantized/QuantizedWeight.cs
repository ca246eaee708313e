using System.Globalization;

namespace ModelCompiler.Runtime.Kernels;

/// <summary>How a <see cref="QuantizedWeight"/> stores its codes and what it multiplies them with.</summary>
public enum QuantScheme
{
    /// <summary>int8 codes, w = s·q per group; fp32 activations.</summary>
    Int8,
    /// <summary>4-bit codes packed two a byte in blocks of 32 (GGUF Q4_0 order), w = s·(q − z) per group; fp32 activations.</summary>
    Int4,
    /// <summary>int8 codes as <see cref="Int8"/>; each activation row rounded to int8 at run time, int8×int8→int32 dot products.</summary>
    W8A8,
    /// <summary>2:4 sparse fp32: of every 4 weights of a row the 2 kept values and their 2-bit positions (<see cref="SparseGemm"/>).</summary>
    Sparse24,
}

/// <summary>
/// A linear layer's weight [N, K] kept compressed in memory: int8 codes (1 byte a weight) or packed 4-bit codes
/// (half a byte), one fp32 scale (and for int4 one zero point) per group of G consecutive weights of a row, and
/// optionally a per-input-channel multiplier applied to x first (AWQ's migrated scales). Built once when a
/// compiled model loads; <see cref="QuantizedGemm"/> multiplies with it.
/// </summary>
public sealed class QuantizedWeight
{
    public QuantScheme Scheme { get; }
    public int N { get; }
    public int K { get; }
    public int GroupSize { get; }
    public int Groups => K / GroupSize;

    /// <summary>int8 codes [N, K] (Int8, W8A8).</summary>
    internal sbyte[]? Int8Codes { get; }

    /// <summary>Packed 4-bit codes [N, K/2] (Int4).</summary>
    internal byte[]? Int4Codes { get; }

    /// <summary>Scales [N, K/G].</summary>
    internal float[] Scales { get; }

    /// <summary>Zero points [N, K/G] (Int4).</summary>
    internal byte[]? Zeros { get; }

    /// <summary>Multiplier of each input channel [K], or null.</summary>
    internal float[]? InputScale { get; }

    /// <summary>The kept values of a 2:4-sparse weight [N, K/2] (Sparse24).</summary>
    internal float[]? SparseValues { get; }

    /// <summary>Their positions [N, K/8]: one nibble a group of 4 (low nibble: even group), bits 0–1 and 2–3 (Sparse24).</summary>
    internal byte[]? SparsePositions { get; }

    /// <summary>Σ_k q[n, k] over each group [N, K/G] (W8A8: the correction for VPDPBUSD's unsigned operand).</summary>
    internal int[]? GroupCodeSums { get; }

    /// <summary>Bytes held for the weight (codes, scales, zeros, input scale): what a decode step streams.</summary>
    public long ByteSize =>
        (Int8Codes?.LongLength ?? 0) + (Int4Codes?.LongLength ?? 0) + 4L * Scales.Length + (Zeros?.LongLength ?? 0) + 4L * (InputScale?.Length ?? 0)
        + 4L * (SparseValues?.LongLength ?? 0) + (SparsePositions?.LongLength ?? 0);

    private QuantizedWeight(int n, int k, float[] values, byte[] positions)
    {
        Scheme = QuantScheme.Sparse24;
        N = n;
        K = k;
        GroupSize = 4;
        Scales = [];
        SparseValues = values;
        SparsePositions = positions;
    }

    /// <summary>
    /// A 2:4-sparse weight from its kept values [N, K/2] and positions [N, K/8] (<see cref="SparsePositions"/>'s layout);
    /// every position nibble must name two different weights of its group, the first before the second.
    /// </summary>
    public static QuantizedWeight FromSparse24(string name, float[] values, byte[] positions, int n, int k)
    {
        if (k % 8 != 0) throw new McException($"{name}: a 2:4-sparse weight needs an input width that is a multiple of 8, got {k}");
        if (values.LongLength != (long)n * k / 2) throw new McException($"{name}: {values.LongLength} kept values for [{n}, {k}] (2 of every 4)");
        if (positions.LongLength != (long)n * k / 8) throw new McException($"{name}: {positions.LongLength} position bytes for [{n}, {k}] (one a pair of groups of 4)");
        for (long i = 0; i < positions.LongLength; i++)
            foreach (int nibble in (ReadOnlySpan<int>)[positions[i] & 0xF, positions[i] >> 4])
                if ((nibble & 3) >= nibble >> 2)
                    throw new McException($"{name}: position byte {i} (0x{positions[i]:X2}) does not name two weights of a group in order");
        foreach (var v in values)
            if (!float.IsFinite(v)) throw new McException($"{name}: a kept value is not finite ({v.ToString(CultureInfo.InvariantCulture)})");
        return new QuantizedWeight(n, k, values, positions);
    }

    private QuantizedWeight(QuantScheme scheme, int n, int k, int groupSize, sbyte[]? int8, byte[]? int4, float[] scales, byte[]? zeros, float[]? inputScale)
    {
        Scheme = scheme;
        N = n;
        K = k;
        GroupSize = groupSize;
        Int8Codes = int8;
        Int4Codes = int4;
        Scales = scales;
        Zeros = zeros;
        InputScale = inputScale;
        if (scheme == QuantScheme.W8A8)
        {
            var sums = new int[n * Groups];
            for (int r = 0; r < n; r++)
                for (int g = 0; g < Groups; g++)
                {
                    int s = 0;
                    for (int i = 0; i < groupSize; i++) s += int8![r * k + g * groupSize + i];
                    sums[r * Groups + g] = s;
                }
            GroupCodeSums = sums;
        }
    }

    /// <summary>Parses the IR's scheme attribute.</summary>
    public static QuantScheme ParseScheme(string scheme) => scheme switch
    {
        "int8" => QuantScheme.Int8,
        "int4" => QuantScheme.Int4,
        "w8a8" => QuantScheme.W8A8,
        "sparse24" => QuantScheme.Sparse24,
        _ => throw new McException($"unknown quantization scheme '{scheme}' (int8, int4, w8a8, sparse24)"),
    };

    /// <summary>
    /// A weight from its tensors as a compiled model's loader reads them (every element a float; codes are small
    /// integers, so exact; for sparse24 the codes are the kept values and the scales the position bytes). Checks every code's range and the shapes; <paramref name="name"/> names the weight in errors.
    /// </summary>
    public static QuantizedWeight FromLoaded(string name, string scheme, float[] codes, float[] scales, float[]? zeros, float[]? inputScale, int n, int k, int groupSize)
    {
        var s = ParseScheme(scheme);
        if (s == QuantScheme.Sparse24)
            return FromSparse24(name, codes, ToBytes(name, scales, 0, 255), n, k);
        if (groupSize <= 0 || k % groupSize != 0) throw new McException($"{name}: group size {groupSize} does not divide {k}");
        if (scales.Length != (long)n * (k / groupSize)) throw new McException($"{name}: {scales.Length} scales for [{n}, {k / groupSize}] groups");
        foreach (var v in scales)
            if (!float.IsFinite(v)) throw new McException($"{name}: a scale is not finite ({v.ToString(CultureInfo.InvariantCulture)})");
        if (inputScale is not null && inputScale.Length != k) throw new McException($"{name}: input scale has {inputScale.Length} elements, expected {k}");
        if (s == QuantScheme.Int4)
        {
            if (groupSize % 32 != 0) throw new McException($"{name}: int4 needs a group size that is a multiple of 32, got {groupSize}");
            if (codes.LongLength != (long)n * k / 2) throw new McException($"{name}: {codes.LongLength} packed codes for [{n}, {k}]");
            if (zeros is null || zeros.Length != scales.Length) throw new McException($"{name}: int4 needs one zero point per group");
            return new QuantizedWeight(s, n, k, groupSize, null, ToBytes(name, codes, 0, 255), scales, ToBytes(name, zeros, 0, 15), inputScale);
        }
        if (codes.LongLength != (long)n * k) throw new McException($"{name}: {codes.LongLength} codes for [{n}, {k}]");
        var int8 = new sbyte[codes.Length];
        for (int i = 0; i < codes.Length; i++)
        {
            float v = codes[i];
            if (v is < -128 or > 127 || v != MathF.Round(v)) throw new McException($"{name}: code {v.ToString(CultureInfo.InvariantCulture)} at {i} is not an int8");
            int8[i] = (sbyte)v;
        }
        return new QuantizedWeight(s, n, k, groupSize, int8, null, scales, null, inputScale);
    }

    /// <summary>A weight from codes already in their stored form (the kernel tests, GGUF blocks).</summary>
    public static QuantizedWeight FromCodes(QuantScheme scheme, int n, int k, int groupSize, sbyte[]? int8, byte[]? int4, float[] scales, byte[]? zeros, float[]? inputScale = null)
    {
        if (groupSize <= 0 || k % groupSize != 0) throw new ArgumentException($"group size {groupSize} does not divide {k}");
        if (scheme == QuantScheme.Int4 && (int4 is null || int4.Length != n * k / 2 || zeros is null || groupSize % 32 != 0))
            throw new ArgumentException("int4 needs packed codes [N, K/2], zeros and a group size that is a multiple of 32");
        if (scheme != QuantScheme.Int4 && (int8 is null || int8.Length != n * k)) throw new ArgumentException("int8 needs codes [N, K]");
        return new QuantizedWeight(scheme, n, k, groupSize, int8, int4, scales, zeros, inputScale);
    }

    private static byte[] ToBytes(string name, float[] values, int min, int max)
    {
        var bytes = new byte[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            float v = values[i];
            if (v < min || v > max || v != MathF.Round(v))
                throw new McException($"{name}: value {v.ToString(CultureInfo.InvariantCulture)} at {i} is outside {min}..{max}");
            bytes[i] = (byte)v;
        }
        return bytes;
    }

    /// <summary>Weight [row, col] dequantized (tests and the reference path).</summary>
    public float this[int row, int col]
    {
        get
        {
            if (Scheme == QuantScheme.Sparse24) return SparseGemm.Weight(this, row, col);
            int g = col / GroupSize;
            float s = Scales[row * Groups + g];
            if (Scheme != QuantScheme.Int4) return s * Int8Codes![row * K + col];
            return s * (Int4Code(Int4Codes!, row, col, K) - Zeros![row * Groups + g]);
        }
    }

    /// <summary>The 4-bit code of [row, col] in the packed layout: block of 32, byte j holds codes j (low) and j+16 (high).</summary>
    public static int Int4Code(byte[] packed, int row, int col, int k)
    {
        int block = col / 32, j = col % 32;
        byte b = packed[row * (k / 2) + block * 16 + (j & 15)];
        return j < 16 ? b & 0x0F : b >> 4;
    }
}
