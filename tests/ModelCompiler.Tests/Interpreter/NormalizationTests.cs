using ModelCompiler.IR;
using static ModelCompiler.Tests.Interpreter.TestModel;

namespace ModelCompiler.Tests.Interpreter;

public sealed class NormalizationTests
{
    [Fact]
    public void RmsNormHandComputed()
    {
        // x = [3, 4]: mean(x²) = 12.5, so y = x / sqrt(12.5 + eps); w = [1, 2].
        var m = new TestModel();
        var x = m.Input("x", F([1, 2], 3, 4));
        var w = m.Weight("w", F([2], 1, 2));
        var y = m.Run(m.Add(OpKind.RmsNorm, [x, w], A(("eps", 0.5))));
        double inv = 1 / Math.Sqrt(13.0);
        Check.Close([3 * inv, 8 * inv], y);
    }

    [Fact]
    public void RmsNormOffsetOneIsGemmasOnePlusW()
    {
        const int D = 6;
        var xv = Noise(6, 3 * D);
        var wv = Noise(7, D);
        var m = new TestModel();
        var x = m.Input("x", F([3, D], xv));
        var w = m.Weight("w", F([D], wv));
        var y = m.Run(m.Add(OpKind.RmsNorm, [x, w], A(("eps", 1e-6), ("offset", 1.0))));
        var expected = new double[3 * D];
        for (int r = 0; r < 3; r++)
        {
            var row = xv.Skip(r * D).Take(D).ToArray();
            double rms = Math.Sqrt(row.Sum(v => v * v) / D + 1e-6);
            for (int i = 0; i < D; i++) expected[r * D + i] = row[i] / rms * (1 + wv[i]);
        }
        Check.Close(expected, y);
    }

    [Fact]
    public void RmsNormWithoutWeight()
    {
        var m = new TestModel();
        var y = m.Run(m.Add(OpKind.RmsNorm, [m.Input("x", F([2], 1, -1))], A(("eps", 0.0))));
        Check.Close([1, -1], y);
    }

    [Fact]
    public void LayerNormHandComputed()
    {
        // x = [1,2,3,4]: mean 2.5, biased variance 1.25.
        var m = new TestModel();
        var x = m.Input("x", F([1, 4], 1, 2, 3, 4));
        var w = m.Weight("w", F([4], 1, 2, 3, 4));
        var b = m.Weight("b", F([4], 0, 0, 0, 10));
        m.Graph.SetOutput("affine", m.Add(OpKind.LayerNorm, [x, w, b], A(("eps", 0.0))));
        m.Graph.SetOutput("plain", m.Add(OpKind.LayerNorm, [x], A(("eps", 0.75))));
        var r = m.RunAll();
        double s = Math.Sqrt(1.25);
        Check.Close([-1.5 / s, -0.5 * 2 / s, 0.5 * 3 / s, 1.5 * 4 / s + 10], r["affine"]);
        Check.Close([-1.5 / Math.Sqrt(2), -0.5 / Math.Sqrt(2), 0.5 / Math.Sqrt(2), 1.5 / Math.Sqrt(2)], r["plain"]);
    }

    [Fact]
    public void SoftmaxOverLastAxisAndOverAxisZero()
    {
        var m = new TestModel();
        var x = m.Input("x", F([2, 3], 1, 2, 3, 1000, 1000, 1000)); // the second row would overflow without max-subtraction
        m.Graph.SetOutput("last", m.Add(OpKind.Softmax, [x], A(("axis", -1))));
        m.Graph.SetOutput("first", m.Add(OpKind.Softmax, [x], A(("axis", 0))));
        var r = m.RunAll();
        double z = Math.Exp(1) + Math.Exp(2) + Math.Exp(3);
        Check.Close([Math.Exp(1) / z, Math.Exp(2) / z, Math.Exp(3) / z, 1 / 3.0, 1 / 3.0, 1 / 3.0], r["last"]);
        // Along axis 0 each column is softmax([k, 1000]): essentially [0, 1].
        double[] col = [1, 2, 3];
        Check.Close(col.Select(v => 1 / (1 + Math.Exp(1000 - v))).Concat(col.Select(v => 1 / (1 + Math.Exp(v - 1000)))).ToArray(), r["first"]);
    }

    [Fact]
    public void ReduceMeanKeepsTheAxis()
    {
        var m = new TestModel();
        var x = m.Input("x", F([2, 3, 2], 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12));
        m.Graph.SetOutput("mid", m.Add(OpKind.ReduceMean, [x], A(("axis", 1))));
        m.Graph.SetOutput("last", m.Add(OpKind.ReduceMean, [x], A(("axis", -1))));
        var r = m.RunAll();
        Check.Shape([2, 1, 2], r["mid"]);
        Check.Close([3, 4, 9, 10], r["mid"]);
        Check.Shape([2, 3, 1], r["last"]);
        Check.Close([1.5, 3.5, 5.5, 7.5, 9.5, 11.5], r["last"]);
    }
}
