using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Reference.Ops;

/// <summary>Elementwise binary ops (numpy broadcasting) and unary ops.</summary>
internal static class Elementwise
{
    private static readonly double Sqrt2 = Math.Sqrt(2.0);
    private static readonly double SqrtTwoOverPi = Math.Sqrt(2.0 / Math.PI);

    public static RefTensor Binary(Node node, RefTensor a, RefTensor b)
    {
        var shape = Layout.Broadcast(a.Shape, b.Shape, () => Interpreter.Describe(node));
        var ia = Layout.BroadcastMap(shape, a.Shape);
        var ib = Layout.BroadcastMap(shape, b.Shape);
        if (a.F is { } fa && b.F is { } fb)
        {
            Func<double, double, double> f = node.Op switch
            {
                OpKind.Add => (x, y) => x + y,
                OpKind.Sub => (x, y) => x - y,
                OpKind.Mul => (x, y) => x * y,
                OpKind.Div => (x, y) => x / y,
                OpKind.Maximum => Math.Max, // NaN-propagating, like torch.maximum
                OpKind.Minimum => Math.Min,
                OpKind.Pow => Math.Pow,
                _ => throw new InvalidOperationException($"{node.Op} is not a binary op"),
            };
            var r = new double[ia.Length];
            for (int e = 0; e < r.Length; e++) r[e] = f(fa[ia[e]], fb[ib[e]]);
            return new RefTensor(node.Type.DType, shape, r, null);
        }
        if (a.I is { } la && b.I is { } lb)
        {
            var r = new long[ia.Length];
            for (int e = 0; e < r.Length; e++) r[e] = IntBinary(node, la[ia[e]], lb[ib[e]]);
            return new RefTensor(node.Type.DType, shape, null, r);
        }
        throw new InvalidOperationException($"{Interpreter.Describe(node)}: mixes float and integer operands");
    }

    /// <summary>Exact integer arithmetic (wrapping on overflow, as two's complement hardware does).</summary>
    private static long IntBinary(Node node, long x, long y) => node.Op switch
    {
        OpKind.Add => unchecked(x + y),
        OpKind.Sub => unchecked(x - y),
        OpKind.Mul => unchecked(x * y),
        OpKind.Div => y != 0 ? (x == long.MinValue && y == -1 ? long.MinValue : x / y) // C# '/' truncates toward zero
            : throw new McException($"{Interpreter.Describe(node)}: integer division by zero"),
        OpKind.Maximum => Math.Max(x, y),
        OpKind.Minimum => Math.Min(x, y),
        OpKind.Pow => IntPow(x, y),
        _ => throw new InvalidOperationException($"{node.Op} is not a binary op"),
    };

    /// <summary>x^y by repeated squaring; a negative exponent gives 1/x^|y| truncated toward zero, like Div.</summary>
    private static long IntPow(long x, long y)
    {
        if (y < 0) return x == 1 ? 1 : x == -1 ? ((y & 1) == 0 ? 1 : -1) : 0; // x == 0 also gives 0 rather than failing
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

    public static RefTensor Unary(Node node, RefTensor x)
    {
        var src = x.F ?? throw new InvalidOperationException($"{Interpreter.Describe(node)} needs a float tensor");
        var f = UnaryFunction(node.Op);
        var r = new double[src.Length];
        for (int e = 0; e < r.Length; e++) r[e] = f(src[e]);
        return new RefTensor(node.Type.DType, x.Shape, r, null);
    }

    /// <summary>The scalar function of a unary op (shared with fused ops, so both compute the same values).</summary>
    public static Func<double, double> UnaryFunction(OpKind op)
    {
        return op switch
        {
            OpKind.Neg => v => -v,
            OpKind.Exp => Math.Exp,
            OpKind.Log => Math.Log,
            OpKind.Sqrt => Math.Sqrt,
            OpKind.Rsqrt => v => 1.0 / Math.Sqrt(v),
            OpKind.Tanh => Math.Tanh,
            OpKind.Sigmoid => Sigmoid,
            OpKind.Relu => v => v > 0 ? v : (double.IsNaN(v) ? v : 0.0),
            OpKind.Abs => Math.Abs,
            // 0.5·x·(1 + erf(x/√2)) written with erfc so that large negative x keeps its relative accuracy.
            OpKind.Gelu => v => 0.5 * v * SpecialFunctions.Erfc(-v / Sqrt2),
            OpKind.GeluTanh => v => 0.5 * v * (1.0 + Math.Tanh(SqrtTwoOverPi * (v + 0.044715 * v * v * v))),
            OpKind.Silu => v => v * Sigmoid(v),
            _ => throw new InvalidOperationException($"{op} is not a unary op"),
        };
    }

    /// <summary>1/(1+e^−x), evaluated so that neither branch overflows.</summary>
    public static double Sigmoid(double v)
    {
        if (v >= 0) return 1.0 / (1.0 + Math.Exp(-v));
        double e = Math.Exp(v);
        return e / (1.0 + e);
    }
}
