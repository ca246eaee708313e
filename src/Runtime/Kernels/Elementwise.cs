using System.Numerics.Tensors;

namespace ModelCompiler.Runtime.Kernels;

/// <summary>The elementwise unary ops of the IR.</summary>
public enum UnaryOp { Neg, Exp, Log, Sqrt, Rsqrt, Tanh, Sigmoid, Relu, Gelu, GeluTanh, Silu, Abs }

/// <summary>The elementwise binary ops of the IR.</summary>
public enum BinaryOp { Add, Sub, Mul, Div, Maximum, Minimum, Pow }

/// <summary>
/// Elementwise float kernels. Every method allows <c>y</c> to be the very same memory as a full-size operand
/// (the compiled model writes in place into buffers that die at the node). Broadcasting comes in the shapes
/// the emitter recognises statically: same shape, one side a scalar, one side a trailing vector repeated over
/// rows, and a general strided form for everything else.
/// </summary>
public static class Elementwise
{
    private const int ParallelThreshold = 1 << 15;

    // ---- unary ----

    public static void Unary(UnaryOp op, ReadOnlySpan<float> x, Span<float> y)
    {
        Check(x.Length, y.Length);
        switch (op)
        {
            case UnaryOp.Neg: TensorPrimitives.Negate(x, y); break;
            case UnaryOp.Exp: TensorPrimitives.Exp(x, y); break;
            case UnaryOp.Log: TensorPrimitives.Log(x, y); break;
            case UnaryOp.Sqrt: TensorPrimitives.Sqrt(x, y); break;
            case UnaryOp.Rsqrt:
                for (int i = 0; i < x.Length; i++) y[i] = (float)(1.0 / Math.Sqrt(x[i]));
                break;
            case UnaryOp.Tanh: TensorPrimitives.Tanh(x, y); break;
            case UnaryOp.Sigmoid: TensorPrimitives.Sigmoid(x, y); break;
            case UnaryOp.Relu: TensorPrimitives.Max(x, 0f, y); break;   // NaN stays NaN, like the reference
            case UnaryOp.Abs: TensorPrimitives.Abs(x, y); break;
            case UnaryOp.Silu:
            {
                // x·sigmoid(x) in chunks, so y may be x itself.
                Span<float> s = stackalloc float[256];
                for (int o = 0; o < x.Length; o += s.Length)
                {
                    int n = Math.Min(s.Length, x.Length - o);
                    var xc = x.Slice(o, n);
                    TensorPrimitives.Sigmoid(xc, s[..n]);
                    TensorPrimitives.Multiply(xc, s[..n], y.Slice(o, n));
                }
                break;
            }
            case UnaryOp.Gelu:
            case UnaryOp.GeluTanh:
                // Computed per element in double (as the reference does), in parallel when large.
                if (x.Length >= ParallelThreshold) GeluParallel(op, x, y);
                else
                    GeluRange(op, x, y);
                break;
            default: throw new ArgumentOutOfRangeException(nameof(op));
        }
    }

    private static unsafe void GeluParallel(UnaryOp op, ReadOnlySpan<float> x, Span<float> y)
    {
        fixed (float* px = x)
        fixed (float* py = y)
        {
            nint xp = (nint)px, yp = (nint)py;
            int n = x.Length, chunk = 8192;
            KernelThreading.For((n + chunk - 1) / chunk, c =>
            {
                int o = c * chunk, len = Math.Min(chunk, n - o);
                GeluRange(op, new ReadOnlySpan<float>((float*)xp + o, len), new Span<float>((float*)yp + o, len));
            });
        }
    }

    private static void GeluRange(UnaryOp op, ReadOnlySpan<float> x, Span<float> y)
    {
        if (op == UnaryOp.Gelu)
            for (int i = 0; i < x.Length; i++) y[i] = (float)SpecialMath.Gelu(x[i]);
        else
            for (int i = 0; i < x.Length; i++) y[i] = (float)SpecialMath.GeluTanh(x[i]);
    }

    // ---- binary ----

    /// <summary>y = a op b, all three the same length.</summary>
    public static void Binary(BinaryOp op, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        Check(a.Length, y.Length);
        Check(b.Length, y.Length);
        switch (op)
        {
            case BinaryOp.Add: TensorPrimitives.Add(a, b, y); break;
            case BinaryOp.Sub: TensorPrimitives.Subtract(a, b, y); break;
            case BinaryOp.Mul: TensorPrimitives.Multiply(a, b, y); break;
            case BinaryOp.Div: TensorPrimitives.Divide(a, b, y); break;
            case BinaryOp.Maximum: TensorPrimitives.Max(a, b, y); break;
            case BinaryOp.Minimum: TensorPrimitives.Min(a, b, y); break;
            case BinaryOp.Pow:
                for (int i = 0; i < y.Length; i++) y[i] = (float)Math.Pow(a[i], b[i]);
                break;
            default: throw new ArgumentOutOfRangeException(nameof(op));
        }
    }

    /// <summary>y = a op b for a scalar b.</summary>
    public static void BinaryScalar(BinaryOp op, ReadOnlySpan<float> a, float b, Span<float> y)
    {
        Check(a.Length, y.Length);
        switch (op)
        {
            case BinaryOp.Add: TensorPrimitives.Add(a, b, y); break;
            case BinaryOp.Sub: TensorPrimitives.Subtract(a, b, y); break;
            case BinaryOp.Mul: TensorPrimitives.Multiply(a, b, y); break;
            case BinaryOp.Div: TensorPrimitives.Divide(a, b, y); break;
            case BinaryOp.Maximum: TensorPrimitives.Max(a, b, y); break;
            case BinaryOp.Minimum: TensorPrimitives.Min(a, b, y); break;
            case BinaryOp.Pow:
                for (int i = 0; i < y.Length; i++) y[i] = (float)Math.Pow(a[i], b);
                break;
            default: throw new ArgumentOutOfRangeException(nameof(op));
        }
    }

    /// <summary>y = a op b for a scalar a.</summary>
    public static void ScalarBinary(BinaryOp op, float a, ReadOnlySpan<float> b, Span<float> y)
    {
        Check(b.Length, y.Length);
        switch (op)
        {
            case BinaryOp.Add: TensorPrimitives.Add(b, a, y); break;
            case BinaryOp.Sub: TensorPrimitives.Subtract(a, b, y); break;
            case BinaryOp.Mul: TensorPrimitives.Multiply(b, a, y); break;
            case BinaryOp.Div: TensorPrimitives.Divide(a, b, y); break;
            case BinaryOp.Maximum: TensorPrimitives.Max(b, a, y); break;
            case BinaryOp.Minimum: TensorPrimitives.Min(b, a, y); break;
            case BinaryOp.Pow:
                for (int i = 0; i < y.Length; i++) y[i] = (float)Math.Pow(a, b[i]);
                break;
            default: throw new ArgumentOutOfRangeException(nameof(op));
        }
    }

    /// <summary>y = a op b where b (length n) repeats over the rows of a and y (length rows·n).</summary>
    public static void BinaryRows(BinaryOp op, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        Check(a.Length, y.Length);
        int n = b.Length;
        if (n == 0) return;
        if (y.Length % n != 0) throw new ArgumentException($"{y.Length} elements are not rows of {n}");
        for (int o = 0; o < y.Length; o += n) Binary(op, a.Slice(o, n), b, y.Slice(o, n));
    }

    /// <summary>y = a op b where a (length n) repeats over the rows of b and y (length rows·n).</summary>
    public static void RowsBinary(BinaryOp op, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        Check(b.Length, y.Length);
        int n = a.Length;
        if (n == 0) return;
        if (y.Length % n != 0) throw new ArgumentException($"{y.Length} elements are not rows of {n}");
        for (int o = 0; o < y.Length; o += n) Binary(op, a, b.Slice(o, n), y.Slice(o, n));
    }

    /// <summary>
    /// The general numpy broadcast: y has <paramref name="shape"/>; a and b are read at Σ index[d]·stride[d]
    /// (stride 0 on the axes they are stretched along).
    /// </summary>
    public static void BinaryStrided(BinaryOp op, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y,
        ReadOnlySpan<int> shape, ReadOnlySpan<int> aStrides, ReadOnlySpan<int> bStrides)
    {
        Span<int> index = stackalloc int[shape.Length];
        long ia = 0, ib = 0;
        for (int e = 0; e < y.Length; e++)
        {
            y[e] = Apply(op, a[(int)ia], b[(int)ib]);
            for (int d = shape.Length - 1; d >= 0; d--)
            {
                index[d]++;
                ia += aStrides[d];
                ib += bStrides[d];
                if (index[d] < shape[d]) break;
                ia -= (long)aStrides[d] * index[d];
                ib -= (long)bStrides[d] * index[d];
                index[d] = 0;
            }
        }
    }

    private static float Apply(BinaryOp op, float x, float y) => op switch
    {
        BinaryOp.Add => x + y,
        BinaryOp.Sub => x - y,
        BinaryOp.Mul => x * y,
        BinaryOp.Div => x / y,
        BinaryOp.Maximum => MathF.Max(x, y),
        BinaryOp.Minimum => MathF.Min(x, y),
        BinaryOp.Pow => (float)Math.Pow(x, y),
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    private static void Check(int input, int output)
    {
        if (input != output) throw new ArgumentException($"elementwise operand of {input} elements for a result of {output}");
    }
}

/// <summary>Integer (and bool) kernels: exact, wrapping arithmetic on int64 storage, as the reference does.</summary>
public static class IntKernels
{
    /// <summary>The general broadcast of <see cref="Elementwise.BinaryStrided"/> on integers; <paramref name="where"/> names the node in errors.</summary>
    public static void BinaryStrided(BinaryOp op, ReadOnlySpan<long> a, ReadOnlySpan<long> b, Span<long> y,
        ReadOnlySpan<int> shape, ReadOnlySpan<int> aStrides, ReadOnlySpan<int> bStrides, DType dtype, string where)
    {
        Span<int> index = stackalloc int[shape.Length];
        long ia = 0, ib = 0;
        for (int e = 0; e < y.Length; e++)
        {
            y[e] = Wrap(dtype, Apply(op, a[(int)ia], b[(int)ib], where));
            for (int d = shape.Length - 1; d >= 0; d--)
            {
                index[d]++;
                ia += aStrides[d];
                ib += bStrides[d];
                if (index[d] < shape[d]) break;
                ia -= (long)aStrides[d] * index[d];
                ib -= (long)bStrides[d] * index[d];
                index[d] = 0;
            }
        }
    }

    private static long Apply(BinaryOp op, long x, long y, string where) => op switch
    {
        BinaryOp.Add => unchecked(x + y),
        BinaryOp.Sub => unchecked(x - y),
        BinaryOp.Mul => unchecked(x * y),
        BinaryOp.Div => y != 0 ? (x == long.MinValue && y == -1 ? long.MinValue : x / y)
            : throw new McException($"{where}: integer division by zero"),
        BinaryOp.Maximum => Math.Max(x, y),
        BinaryOp.Minimum => Math.Min(x, y),
        BinaryOp.Pow => Pow(x, y),
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    private static long Pow(long x, long y)
    {
        if (y < 0) return x == 1 ? 1 : x == -1 ? ((y & 1) == 0 ? 1 : -1) : 0;
        long result = 1;
        unchecked
        {
            while (y > 0)
            {
                if ((y & 1) != 0) result *= x;
                x *= x;
                y >>= 1;
            }
        }
        return result;
    }

    /// <summary>A long reduced to the range of a narrower integer dtype (two's complement); bool is 0 or 1.</summary>
    public static long Wrap(DType dtype, long v) => dtype switch
    {
        DType.I32 => unchecked((int)v),
        DType.I8 => unchecked((sbyte)v),
        DType.U8 => unchecked((byte)v),
        DType.Bool => v != 0 ? 1 : 0,
        _ => v,
    };

    /// <summary>Float to an integer dtype: truncation toward zero (bool: nonzero), then wrapped.</summary>
    public static void CastToInt(ReadOnlySpan<float> x, Span<long> y, DType to)
    {
        for (int i = 0; i < x.Length; i++)
            y[i] = to == DType.Bool ? (x[i] != 0 ? 1 : 0) : Wrap(to, (long)Math.Truncate((double)x[i]));
    }

    /// <summary>Integer to integer: wrapped to the target width.</summary>
    public static void CastInt(ReadOnlySpan<long> x, Span<long> y, DType to)
    {
        for (int i = 0; i < x.Length; i++) y[i] = Wrap(to, x[i]);
    }

    /// <summary>Integer to float.</summary>
    public static void CastToFloat(ReadOnlySpan<long> x, Span<float> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = (float)(double)x[i];
    }

    /// <summary>offset, offset+1, ... (the positions op).</summary>
    public static void Positions(long offset, Span<long> y)
    {
        for (int i = 0; i < y.Length; i++) y[i] = offset + i;
    }
}
