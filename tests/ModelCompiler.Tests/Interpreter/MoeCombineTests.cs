using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using static ModelCompiler.Tests.Interpreter.TestModel;

namespace ModelCompiler.Tests.Interpreter;

public sealed class MoeCombineTests
{
    /// <summary>Four experts whose outputs are (e+1)·[1, 10, 100] in every row, so the result reads off the weights.</summary>
    private static RefTensor Run(double[] logits, int rows, bool? normalize)
    {
        var m = new TestModel();
        var router = m.Input("router", F([rows, 4], logits));
        var experts = Enumerable.Range(0, 4)
            .Select(e => m.Input($"y{e}", F([rows, 3], Enumerable.Range(0, rows).SelectMany(_ => new[] { e + 1.0, 10 * (e + 1.0), 100 * (e + 1.0) }).ToArray())))
            .ToList();
        var attrs = A(("top_k", 2));
        if (normalize is { } n) attrs = attrs.With("normalize", n);
        return m.Run(m.Add(OpKind.MoeCombine, [router, .. experts], attrs));
    }

    [Fact]
    public void TopTwoOfFourNormalized()
    {
        // softmax([0, ln 2, ln 3, ln 4]) = [1, 2, 3, 4]/10: experts 3 and 2 win with weights 4/7 and 3/7.
        var y = Run([0, Math.Log(2), Math.Log(3), Math.Log(4)], 1, normalize: null);
        double v = 4.0 / 7 * 4 + 3.0 / 7 * 3;
        Check.Close([v, 10 * v, 100 * v], y);
    }

    [Fact]
    public void TopTwoOfFourUnnormalizedKeepsTheSoftmaxProbabilities()
    {
        var y = Run([0, Math.Log(2), Math.Log(3), Math.Log(4)], 1, normalize: false);
        double v = 0.4 * 4 + 0.3 * 3;
        Check.Close([v, 10 * v, 100 * v], y);
    }

    [Fact]
    public void TiesGoToTheLowerExpertIndex()
    {
        // Experts 0, 1, 2 tie; 0 and 1 are chosen, each weighted 1/2 after normalization.
        var y = Run([1, 1, 1, 0], 1, normalize: true);
        Check.Close([1.5, 15, 150], y);
    }

    [Fact]
    public void EachRowRoutesIndependently()
    {
        // Row 0 prefers experts 0 and 1, row 1 experts 2 and 3; compared with softmax written out.
        double[] logits = [2, 1, -1, -3, -0.5, 0.25, 3, 1.5];
        var y = Run(logits, 2, normalize: true);
        var expected = new List<double>();
        foreach (var (row, chosen) in new[] { (0, new[] { 0, 1 }), (1, new[] { 2, 3 }) })
        {
            var exp = logits.Skip(4 * row).Take(4).Select(Math.Exp).ToArray();
            double w0 = exp[chosen[0]] / (exp[chosen[0]] + exp[chosen[1]]), w1 = 1 - w0;
            double v = w0 * (chosen[0] + 1) + w1 * (chosen[1] + 1);
            expected.AddRange([v, 10 * v, 100 * v]);
        }
        Check.Close([.. expected], y);
    }
}
