using ILGPU;

namespace ModelCompiler.Backends.Cuda.Kernels;

/// <summary>fp16 ↔ fp32 by bit manipulation, for the portable (CPU-accelerator) paths of the fp16 kernels.</summary>
public static class HalfBits
{
    /// <summary>The float value of the fp16 in the low 16 bits (normals, subnormals, zeros, infinities, NaN).</summary>
    public static float ToFloat(uint h)
    {
        uint sign = (h & 0x8000u) << 16, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
        if (exponent == 0)
        {
            // Zero or subnormal: mantissa · 2^-24, exact in fp32.
            float v = mantissa * (1f / 16777216f);
            return sign != 0 ? -v : v;
        }
        uint bits = exponent == 31 ? sign | 0x7F800000u | (mantissa << 13) : sign | ((exponent + 112) << 23) | (mantissa << 13);
        return Interop.IntAsFloat(bits);
    }

    /// <summary>Low and high fp16 halves of a packed pair.</summary>
    public static float Low(uint pair) => ToFloat(pair & 0xFFFF);

    public static float High(uint pair) => ToFloat(pair >> 16);
}
