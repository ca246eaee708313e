namespace ModelCompiler.Runtime.Kernels;

/// <summary>
/// The error function in double, by the same method as the reference interpreter's SpecialFunctions
/// (series below 2.5, continued fraction above; about 1e-15 relative), and the two GELUs built on it.
/// </summary>
public static class SpecialMath
{
    private static readonly double TwoOverSqrtPi = 2.0 / Math.Sqrt(Math.PI);
    private static readonly double Sqrt2 = Math.Sqrt(2.0);
    private static readonly double SqrtTwoOverPi = Math.Sqrt(2.0 / Math.PI);

    /// <summary>0.5·x·(1 + erf(x/√2)), written with erfc so large negative x keeps its relative accuracy.</summary>
    public static double Gelu(double v) => 0.5 * v * Erfc(-v / Sqrt2);

    /// <summary>The tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).</summary>
    public static double GeluTanh(double v) => 0.5 * v * (1.0 + Math.Tanh(SqrtTwoOverPi * (v + 0.044715 * v * v * v)));

    public static double Erf(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        double ax = Math.Abs(x);
        if (ax < 2.5) return ErfSeries(x);
        double r = 1.0 - ErfcContinuedFraction(ax);
        return x < 0 ? -r : r;
    }

    public static double Erfc(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        if (x < 0) return 2.0 - Erfc(-x);
        if (x < 1.5) return 1.0 - ErfSeries(x);
        return ErfcContinuedFraction(x);
    }

    private static double ErfSeries(double x)
    {
        double x2 = x * x;
        double term = x, sum = x;
        for (int n = 1; n < 200; n++)
        {
            term *= 2.0 * x2 / (2 * n + 1);
            sum += term;
            if (Math.Abs(term) <= 1e-17 * Math.Abs(sum)) break;
        }
        return TwoOverSqrtPi * Math.Exp(-x2) * sum;
    }

    private static double ErfcContinuedFraction(double x)
    {
        if (x > 27) return 0;
        const double tiny = 1e-300;
        double f = x, c = x, d = 0;
        for (int k = 1; k < 5000; k++)
        {
            double a = k / 2.0;
            d = x + a * d;
            if (d == 0) d = tiny;
            d = 1 / d;
            c = x + a / c;
            if (c == 0) c = tiny;
            double delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1) < 1e-16) break;
        }
        return Math.Exp(-x * x) / Math.Sqrt(Math.PI) / f;
    }
}
