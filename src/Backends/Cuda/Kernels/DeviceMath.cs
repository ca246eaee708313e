// NaN tests are written v != v: the same comparison on both accelerators.
#pragma warning disable CS1718
using ILGPU;

namespace ModelCompiler.Backends.Cuda.Kernels;

/// <summary>
/// Float math written in plain arithmetic and bit casts. ILGPU 1.5.3's PTX backend has no exp/log/tanh without the
/// Algorithms library, and a CPU-only fallback branch would still be compiled for PTX; these compile to the same
/// instructions on both accelerators, so the CPU accelerator (cuda-sim) tests exactly the code the GPU runs.
/// Relative error is a few ulp of float32 over the ranges a transformer sees.
/// </summary>
public static class DeviceMath
{
    private const float Log2E = 1.44269504088896341f;
    private const float Ln2Hi = 0.693145751953125f, Ln2Lo = 1.42860682030941723212e-6f;

    public static float Exp(float x)
    {
        if (x > 88.72f) return float.PositiveInfinity;
        if (x < -103.9f) return 0f;
        if (x != x) return x;
        float n = RoundToInt(x * Log2E);
        float r = x - n * Ln2Hi - n * Ln2Lo; // |r| <= ln2/2
        // e^r by its Taylor series to r^7 (error < 2e-8 relative on |r| <= 0.347).
        float p = 1f + r * (1f + r * (0.5f + r * (1f / 6f + r * (1f / 24f + r * (1f / 120f + r * (1f / 720f + r * (1f / 5040f)))))));
        return Scale2(p, (int)n);
    }

    public static float Log(float x)
    {
        if (x != x || x < 0f) return float.NaN;
        if (x == 0f) return float.NegativeInfinity;
        if (x == float.PositiveInfinity) return x;
        int e = 0;
        if (x < 1.17549435e-38f) { x *= 8388608f; e = -23; } // subnormal: scale into the normal range first
        uint bits = (uint)Interop.FloatAsInt(x);
        e += (int)((bits >> 23) & 0xff) - 127;
        float m = Interop.IntAsFloat((bits & 0x007fffffu) | 0x3f800000u); // [1, 2)
        if (m > 1.41421356f) { m *= 0.5f; e++; }
        // log m = 2·atanh(s), s = (m−1)/(m+1), |s| < 0.172.
        float s = (m - 1f) / (m + 1f), s2 = s * s;
        float series = s * (2f + s2 * (2f / 3f + s2 * (2f / 5f + s2 * (2f / 7f + s2 * (2f / 9f + s2 * (2f / 11f))))));
        return e * Ln2Hi + (series + e * Ln2Lo);
    }

    public static float Sqrt(float x) => MathF.Sqrt(x);

    public static float Tanh(float x)
    {
        float a = Math.Abs(x);
        if (a < 0.0625f)
        {
            float x2 = x * x; // tanh's series, where 1 − 2/(e^{2a}+1) would lose digits
            return x * (1f + x2 * (-1f / 3f + x2 * (2f / 15f + x2 * (-17f / 315f))));
        }
        float t = a > 20f ? 1f : 1f - 2f / (Exp(2f * a) + 1f);
        return x < 0 ? -t : t;
    }

    public static float Sigmoid(float x)
    {
        if (x >= 0) return 1f / (1f + Exp(-x));
        float e = Exp(x);
        return e / (1f + e);
    }

    /// <summary>erf by Abramowitz–Stegun 7.1.26 refined: |error| &lt; 1.5e-7.</summary>
    public static float Erf(float x)
    {
        float a = Math.Abs(x);
        float t = 1f / (1f + 0.3275911f * a);
        float y = 1f - (((((1.061405429f * t - 1.453152027f) * t) + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t * Exp(-a * a);
        return x < 0 ? -y : y;
    }

    public static float Pow(float a, float b)
    {
        if (b == 0f) return 1f;
        if (a == 0f) return b > 0 ? 0f : float.PositiveInfinity;
        float r = Exp(b * Log(Math.Abs(a)));
        if (a > 0) return r;
        float bi = RoundToInt(b);
        if (bi != b) return float.NaN;
        return ((int)bi & 1) != 0 ? -r : r;
    }

    private static float RoundToInt(float v) => v >= 0 ? (float)(int)(v + 0.5f) : -(float)(int)(-v + 0.5f);

    /// <summary>p·2^n, in two steps so that n down to −150 still gives subnormals and up to 128 gives infinity.</summary>
    private static float Scale2(float p, int n)
    {
        int n1 = n / 2, n2 = n - n1;
        return p * Interop.IntAsFloat((uint)(n1 + 127) << 23) * Interop.IntAsFloat((uint)(n2 + 127) << 23);
    }

    // ---- the IR's activations, by the codes of ActivationCode ----

    public static float Activate(float v, int code) => code switch
    {
        ActivationCode.Relu => v > 0 ? v : (v != v ? v : 0f),
        ActivationCode.Gelu => 0.5f * v * (1f + Erf(v * 0.70710678118654752f)),
        ActivationCode.GeluTanh => 0.5f * v * (1f + Tanh(0.79788456080286536f * (v + 0.044715f * v * v * v))),
        ActivationCode.Silu => v * Sigmoid(v),
        ActivationCode.Sigmoid => Sigmoid(v),
        ActivationCode.Tanh => Tanh(v),
        ActivationCode.Neg => -v,
        ActivationCode.Exp => Exp(v),
        ActivationCode.Log => Log(v),
        ActivationCode.Sqrt => Sqrt(v),
        ActivationCode.Rsqrt => 1f / Sqrt(v),
        ActivationCode.Abs => Math.Abs(v),
        _ => v,
    };
}

/// <summary>Unary functions as kernel arguments (ILGPU kernels take no delegates).</summary>
public static class ActivationCode
{
    public const int None = 0, Relu = 1, Gelu = 2, GeluTanh = 3, Silu = 4, Sigmoid = 5, Tanh = 6,
        Neg = 7, Exp = 8, Log = 9, Sqrt = 10, Rsqrt = 11, Abs = 12;
}

/// <summary>Binary functions as kernel arguments.</summary>
public static class BinaryCode
{
    public const int Add = 0, Sub = 1, Mul = 2, Div = 3, Maximum = 4, Minimum = 5, Pow = 6;

    public static float Apply(float a, float b, int code) => code switch
    {
        Add => a + b,
        Sub => a - b,
        Mul => a * b,
        Div => a / b,
        Maximum => a != a || b != b ? float.NaN : Math.Max(a, b),
        Minimum => a != a || b != b ? float.NaN : Math.Min(a, b),
        _ => DeviceMath.Pow(a, b),
    };
}
