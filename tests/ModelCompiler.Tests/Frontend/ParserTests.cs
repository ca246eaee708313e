using System.Text.Json.Nodes;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Runtime;
using static ModelCompiler.Tests.Frontend.Dsl;

namespace ModelCompiler.Tests.Frontend;

/// <summary>
/// Every construct of the DSL, parsed and elaborated: each test asserts on the graph it produces
/// (ops, types, attributes, hyperparameter values) or on its printed form.
/// </summary>
public sealed class ParserTests
{
    private const string X4 = "input x: f32[batch, 4]\n";

    private static Dictionary<string, string> Sets(params (string Name, string Value)[] sets) =>
        sets.ToDictionary(s => s.Name, s => s.Value);

    private static Node Single(Graph g, OpKind op) => Assert.Single(g.Nodes, n => n.Op == op);

    private static List<double> Consts(Graph g) => g.Nodes.Where(n => n.Op == OpKind.Const).Select(n => n.Attrs.Float("value")).ToList();

    // ---------------------------------------------------------------- declarations

    [Fact]
    public void ImportsResolveRelativeToTheImportingFileAndLoadEachFileOnce()
    {
        var dir = Directory.CreateTempSubdirectory("mc-parser-");
        try
        {
            Directory.CreateDirectory(Path.Combine(dir.FullName, "lib"));
            File.WriteAllText(Path.Combine(dir.FullName, "main.arch"), """
                import "lib/blocks.arch"
                import "lib/more.arch"
                input x: f32[batch, 4]
                forward { output y = double(x) }
                """);
            File.WriteAllText(Path.Combine(dir.FullName, "lib", "blocks.arch"), """
                import "more.arch"
                block double(x: tensor) { return twice(x) }
                """);
            File.WriteAllText(Path.Combine(dir.FullName, "lib", "more.arch"), """
                block twice(x: tensor) { return x + x }
                """);
            var bag = new DiagnosticBag();
            var source = ArchLoader.Load(Path.Combine(dir.FullName, "main.arch"), bag);
            Assert.True(source is not null, bag.Render());
            Assert.Equal(3, source!.Files.Count);   // more.arch is imported twice but loaded once
            Assert.Equal(["double", "twice"], source.Blocks.Keys.Order());
            var graph = Elaborator.Elaborate(source, HyperBinding.Resolve(source, null, null, new Dictionary<string, string>()), bag);
            Assert.NotNull(graph);
            Assert.Equal(["add: f32[batch,4]"], Ops(graph!));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void ModelNamesTheGraph()
    {
        Assert.Equal("Tiny", Elaborate("model Tiny\n" + X4 + "forward { output y = x }").Name);
        Assert.Equal("t", Elaborate(X4 + "forward { output y = x }").Name);   // the file name without model
    }

    [Fact]
    public void HypersOfEveryTypeWithDefaultsThatUseEarlierHypers()
    {
        var g = Elaborate("""
            hyper n: int = 4
            hyper f: float = 2
            hyper half: float = n / 8
            hyper flag: bool = true
            hyper name: string = "m{n}"
            hyper ids: ints = [1, 2, 3]
            hyper last: int = ids[-1] + n // 3
            input x: f32[batch, n]
            forward { output y = x }
            """);
        var h = g.Hyperparameters;
        Assert.Equal(4L, h["n"]);
        Assert.Equal(2.0, h["f"]);           // an int default converts to a float hyper
        Assert.Equal(0.5, h["half"]);
        Assert.Equal(true, h["flag"]);
        Assert.Equal("m4", h["name"]);
        Assert.Equal([1L, 2L, 3L], (long[])h["ids"]);
        Assert.Equal(4L, h["last"]);
        Assert.Equal("f32[batch,4]", g.Inputs.Single().Type.ToString());
    }

    [Fact]
    public void SetOverridesFlowIntoLaterDefaults()
    {
        const string text = """
            hyper dim: int = 64
            hyper n_heads: int = 4
            hyper head_dim: int = dim // n_heads
            input x: f32[batch, dim]
            forward { output y = x }
            """;
        Assert.Equal(16L, Elaborate(text).Hyperparameters["head_dim"]);
        var g = Elaborate(text, Sets(("dim", "128"), ("n_heads", "2")));
        Assert.Equal(64L, g.Hyperparameters["head_dim"]);
        Assert.Equal("f32[batch,128]", g.Inputs.Single().Type.ToString());
    }

    [Fact]
    public void FromClauseTakesTheFirstConfigKeyPresentIncludingNestedPaths()
    {
        const string text = """
            hyper n: int = 1 from num.layers | n_layer
            input x: f32[batch, 4]
            forward { output y = x }
            """;
        Assert.Equal(["num.layers", "n_layer"], Load(text).Hypers.Single().ConfigKeys.ToArray());
        Assert.Equal(1L, Elaborate(text).Hyperparameters["n"]);
        Assert.Equal(5L, Elaborate(text, config: new JsonObject { ["n_layer"] = 5 }).Hyperparameters["n"]);
        Assert.Equal(7L, Elaborate(text, config: new JsonObject { ["num"] = new JsonObject { ["layers"] = 7 }, ["n_layer"] = 5 }).Hyperparameters["n"]);
        Assert.Equal(9L, Elaborate(text, Sets(("n", "9")), new JsonObject { ["n_layer"] = 5 }).Hyperparameters["n"]);   // --set wins
    }

    [Fact]
    public void InputsKeepSymbolicDimsAndShareSymbolsByName()
    {
        var g = Elaborate("""
            hyper dim: int = 8
            input ids: i64[batch, seq]
            input h: f32[batch, seq, dim]
            forward { output y = reshape(h, [dim(h, 0), dim(ids, 1), 2, dim // 2]) }
            """);
        var inputs = g.Inputs.ToList();
        Assert.Equal("i64[batch,seq]", inputs[0].Type.ToString());
        Assert.Equal("f32[batch,seq,8]", inputs[1].Type.ToString());
        Assert.Equal(Dim.Sym("seq"), inputs[0].Type[1]);
        Assert.Equal(inputs[0].Type[1], inputs[1].Type[1]);
        Assert.Equal("f32[batch,seq,2,4]", g.Output("y").Type.ToString());
    }

    [Fact]
    public void IgnoreListsConfigKeysThatMayBePresent()
    {
        const string text = """
            ignore foo, bar
            hyper n: int = 1 from n
            input x: f32[batch, 4]
            forward { output y = x }
            """;
        Assert.Equal(["bar", "foo"], Load(text).IgnoredConfigKeys.Order().ToArray());
        Elaborate(text, config: new JsonObject { ["foo"] = 1, ["bar"] = "x", ["n"] = 2, ["use_cache"] = true });
        var e = Assert.Throws<McException>(() => Elaborate(text, config: new JsonObject { ["other"] = 1 }));
        Assert.Contains("key 'other'", e.Message);
        Assert.Contains("ignore", e.Message);
    }

    // ---------------------------------------------------------------- blocks and calls

    [Fact]
    public void BlockParametersTakeDefaultsPositionalAndNamedArguments()
    {
        var g = Elaborate(X4 + """
            block scale(x: tensor, factor: float = 2, shift: float = factor + 1, extra = 0) {
              return x * factor + shift
            }
            forward {
              a = scale(x)                          # factor 2, shift 3
              b = scale(x, 5)                       # positional: shift follows factor
              c = scale(x, shift: 0.5)              # named, factor keeps its default
              d = scale(shift: 1, factor: 4, x: x)  # all named, in any order
              output y = a + b + c + d
            }
            """);
        Assert.Equal([2.0, 3.0, 5.0, 6.0, 2.0, 0.5, 4.0, 1.0], Consts(g));
        Assert.Equal(4, g.Nodes.Count(n => n.Op == OpKind.Mul));
    }

    [Fact]
    public void BuiltinNamedArgumentsBecomeAttributes()
    {
        var g = Elaborate(X4 + "forward { output y = rms_norm(softmax(x, axis: 0), eps: 1e-5) }");
        Assert.Equal(0L, Single(g, OpKind.Softmax).Attrs.Int("axis"));
        var norm = Single(g, OpKind.RmsNorm);
        Assert.Equal(1e-5, norm.Attrs.Float("eps"));
        Assert.Equal(0.0, norm.Attrs.Float("offset"));
        Assert.Single(norm.Inputs);   // the omitted optional weight is dropped
    }

    [Fact]
    public void ReturnEndsTheBlockEvenInsideALoop()
    {
        var g = Elaborate(X4 + """
            block act(x: tensor, name: string) {
              if name == "relu" { return relu(x) }
              return gelu(x)
            }
            block first(x: tensor) {
              for i in 0 .. 10 {
                if i == 2 { return x * i }
              }
              return x
            }
            forward {
              output a = act(x, "relu")
              output b = act(x, "other")
              output c = first(x)
            }
            """);
        Assert.Equal(["relu: f32[batch,4]", "gelu: f32[batch,4]", "mul: f32[batch,4]"], Ops(g));
        Assert.Equal([2.0], Consts(g));
    }

    // ---------------------------------------------------------------- weights

    [Fact]
    public void WeightViewsGiveTheStoredShapeAndTheNodesThatUndoIt()
    {
        var g = Elaborate(X4 + """
            forward {
              weight p: [4, 8] = "plain"
              weight t: [4, 8] = "t" transposed
              weight c: [4, 8] = "c" chunk(1, 3)
              weight q: [4, 4] = "qkv" transposed chunk(1, 3)
              weight a: [4, 8] = "axis1" chunk(1, 2, 1)
              weight n: [4, 8] = "neg" chunk(0, 2, -1)
              weight b: [4] = "bias" chunk(2, 3)
              weight h: f16[4] = "half"
              output p = p
              output t = t
              output c = c
              output q = q
              output a = a
              output n = n
              output b = b
              output h = h
            }
            """);
        Assert.Equal("""
            graph t {
              %0 = input "x" : f32[batch,4]
              %1 = weight "plain" : f32[4,8]
              %2 = weight "t" : f32[8,4]
              %3 = transpose %2 {perm=[1,0]} : f32[4,8]
              %4 = weight "c" : f32[12,8]
              %5 = slice %4 {axis=0, end=8, start=4} : f32[4,8]
              %6 = weight "qkv" : f32[4,12]
              %7 = transpose %6 {perm=[1,0]} : f32[12,4]
              %8 = slice %7 {axis=0, end=8, start=4} : f32[4,4]
              %9 = weight "axis1" : f32[4,16]
              %10 = slice %9 {axis=1, end=16, start=8} : f32[4,8]
              %11 = weight "neg" : f32[4,16]
              %12 = slice %11 {axis=1, end=8, start=0} : f32[4,8]
              %13 = weight "bias" : f32[12]
              %14 = slice %13 {axis=0, end=12, start=8} : f32[4]
              %15 = weight "half" : f16[4]
              output "p" = %1
              output "t" = %3
              output "c" = %5
              output "q" = %8
              output "a" = %10
              output "n" = %12
              output "b" = %14
              output "h" = %15
            }

            """, Print(g, names: false));
    }

    [Fact]
    public void TheSameCheckpointNameTwiceIsOneWeightNode()
    {
        var g = Elaborate(X4 + """
            forward {
              weight a: [4, 4] = "shared"
              weight b: [4, 4] = "shared"
              weight t: [4, 4] = "shared" transposed
              output y = linear(linear(linear(x, a), b), t)
            }
            """);
        var w = Assert.Single(g.Weights);
        Assert.Equal(3, g.Nodes.Count(n => n.Op == OpKind.Linear && n.Inputs[1] == w) + g.Nodes.Count(n => n.Op == OpKind.Transpose && n.Inputs[0] == w));
    }

    [Theory]
    [InlineData("true", new[] { "embed" })]
    [InlineData("false", new[] { "embed", "lm_head" })]
    public void TiedEmbeddingsChooseTheCheckpointNameWithATernary(string tie, string[] weights)
    {
        var g = Elaborate("""
            hyper tie: bool = true
            input ids: i64[batch, seq]
            forward {
              weight embed: [16, 4] = "embed"
              weight head: [16, 4] = tie ? "embed" : "lm_head"
              output logits = linear(embedding(ids, embed), head)
            }
            """, Sets(("tie", tie)));
        Assert.Equal(weights, g.Weights.Select(w => w.Attrs.Str("name")));
    }

    // ---------------------------------------------------------------- statements

    [Fact]
    public void ForLoopsUnrollWithScopedNames()
    {
        var g = Elaborate("hyper n: int = 3\n" + X4 + """
            forward {
              for i in 0 .. n { x = x + i }
              for j in 5 .. 5 { x = relu(x) }   # empty
              output y = x
            }
            """);
        var adds = g.Nodes.Where(n => n.Op == OpKind.Add).ToList();
        Assert.Equal(["i0.x", "i1.x", "i2.x"], adds.Select(n => n.Name));
        Assert.Equal([0.0, 1.0, 2.0], Consts(g));
        Assert.DoesNotContain(g.Nodes, n => n.Op == OpKind.Relu);
        Assert.Same(adds[^1], g.Output("y"));
    }

    [Theory]
    [InlineData("a", OpKind.Relu)]
    [InlineData("b", OpKind.Gelu)]
    [InlineData("c", OpKind.Silu)]
    public void IfElseIfElsePicksOneBranch(string mode, OpKind expected)
    {
        var g = Elaborate("hyper mode: string = \"a\"\n" + X4 + """
            forward {
              if mode == "a" { y = relu(x) } else if mode == "b" { y = gelu(x) } else { y = silu(x) }
              output y = y
            }
            """, Sets(("mode", mode)));
        Assert.Equal(expected, Assert.Single(g.Nodes, n => !n.Op.IsLeaf()).Op);
    }

    [Fact]
    public void OutputsTakeIdentifiersOrInterpolatedStringsInOrder()
    {
        var g = Elaborate(X4 + """
            forward {
              for i in 0 .. 2 { output "hidden.{i}" = x }
              output logits = relu(x)
              output "a{{b}}" = x
            }
            """);
        Assert.Equal(["hidden.0", "hidden.1", "logits", "a{b}"], g.Outputs.Select(o => o.Key));
        Assert.Equal(OpKind.Relu, g.Output("logits").Op);
    }

    [Fact]
    public void MultiAssignmentUnpacksSplitAndChunk()
    {
        var g = Elaborate("""
            input x: f32[batch, 6]
            forward {
              a, b = split(x, [2, 4])
              q, k, v = chunk(x, 3)
              output a = a
              output b = b
              output q = q
              output v = v
            }
            """);
        Assert.Equal("f32[batch,2]", g.Output("a").Type.ToString());
        Assert.Equal("f32[batch,4]", g.Output("b").Type.ToString());
        Assert.Equal("f32[batch,2]", g.Output("q").Type.ToString());
        var v = g.Output("v");
        Assert.Equal(OpKind.Slice, v.Op);
        Assert.Equal((1L, 4L, 6L), (v.Attrs.Int("axis"), v.Attrs.Int("start"), v.Attrs.Int("end")));
    }

    [Fact]
    public void SemicolonsAndTrailingCommasAreOptional()
    {
        var g = Elaborate(X4 + """
            block f(x: tensor, n: int,) { return x * n; }
            forward { y = f(x, 2,); l = [1, 2,]; output y = y; }
            """);
        Assert.Equal(["mul: f32[batch,4]"], Ops(g));
    }

    [Fact]
    public void CommentsAreIgnoredButNotInsideStrings()
    {
        var g = Elaborate("""
            # header
            hyper a: int = 4   # trailing
            # between declarations
            input x: f32[batch, a]  # after a type
            forward {   # after a brace
              # inside a body
              output "a#b" = x  # a '#' inside a string is text
            }
            # at the end, without a newline
            """.TrimEnd('\n'));
        Assert.Equal("a#b", g.Outputs.Single().Key);
    }

    [Fact]
    public void RequireThatHoldsAddsNothing()
    {
        var g = Elaborate("hyper a: int = 4\n" + X4 + """
            forward {
              require(a == 4, "a must be 4")
              output y = x
            }
            """);
        Assert.Single(g.Nodes);
    }

    // ---------------------------------------------------------------- expressions

    [Fact]
    public void StringInterpolationFormatsValuesAndEscapes()
    {
        var g = Elaborate("hyper n: int = 3\nhyper f: float = 0.5\nhyper flag: bool = true\n" + X4 + """
            forward {
              i = 2
              output "layers.{i}" = x
              output "{n * 2}.{f}.{flag}.{1e-5}" = x
              output "{{literal}} and }}" = x
              output "tab\there \"q\" back\\slash" = x
              output "nested {"in{i}"}" = x
              output "{ i + 1 }" = x
            }
            """);
        Assert.Equal(["layers.2", "6.0.5.true.1e-05", "{literal} and }", "tab\there \"q\" back\\slash", "nested in2", "3"],
            g.Outputs.Select(o => o.Key));
    }

    [Fact]
    public void WeightNamesInterpolateLoopVariables()
    {
        var g = Elaborate(X4 + """
            forward {
              for i in 0 .. 2 {
                layer = "layers.{i}"
                weight w: [4, 4] = "{layer}.weight"
                x = linear(x, w)
              }
              output y = x
            }
            """);
        Assert.Equal(["layers.0.weight", "layers.1.weight"], g.Weights.Select(w => w.Attrs.Str("name")));
    }

    [Fact]
    public void TernaryIsRightAssociativeAndLowestPrecedence()
    {
        var h = Elaborate("""
            hyper flag: bool = false
            hyper t: int = flag ? 1 : 2
            hyper u: int = flag ? 1 : t == 2 ? 20 : 30
            hyper v: int = (flag ? 1 : 2) * 10
            hyper w: int = 1 + 1 == 2 ? 5 : 6
            input x: f32[batch, 4]
            forward { output y = x }
            """).Hyperparameters;
        Assert.Equal((2L, 20L, 20L, 5L), ((long)h["t"], (long)h["u"], (long)h["v"], (long)h["w"]));
    }

    [Fact]
    public void ArithmeticFloorsIntegerDivisionAndSlashGivesAFloat()
    {
        var h = Elaborate("""
            hyper a: int = -7 // 2
            hyper b: int = 7 // -2
            hyper c: int = -7 % 2
            hyper d: int = 7 % -2
            hyper e: float = 7 / 2
            hyper f: float = 6 / 3
            hyper g: int = 1 + 2 * 3 - 4
            hyper h: int = (1 + 2) * 3
            hyper i: int = -2 * -3
            hyper j: float = 7.5 // 2
            hyper k: float = -7.5 % 2
            hyper l: int = 1_000 + 1
            hyper m: float = 2.5E3
            hyper n: float = 1e-5
            hyper o: int = 10 - 2 - 3
            hyper p: int = 100 // 10 // 5
            input x: f32[batch, 4]
            forward { output y = x }
            """).Hyperparameters;
        Assert.Equal([-4L, -4L, 1L, -1L], new[] { "a", "b", "c", "d" }.Select(k => (long)h[k]));
        Assert.Equal([3.5, 2.0, 3.0, 0.5, 2500.0, 1e-5], new[] { "e", "f", "j", "k", "m", "n" }.Select(k => (double)h[k]));
        Assert.Equal([3L, 9L, 6L, 1001L, 5L, 2L], new[] { "g", "h", "i", "l", "o", "p" }.Select(k => (long)h[k]));

        // '/' always gives a float, so it cannot initialise an int.
        var d = Assert.Single(Diagnose("hyper q: int = 6 / 3\n" + X4 + "forward { output y = x }"));
        Assert.Equal(Codes.BadHyperValue, d.Code);
    }

    [Fact]
    public void ComparisonsOnNumbersStringsAndLists()
    {
        var h = Elaborate("""
            hyper c1: bool = 1 < 2 && 2 <= 2 && 3 > 2 && 3 >= 3
            hyper c2: bool = 1 == 1.0
            hyper c3: bool = "a" == "a" && "a" != "b"
            hyper c4: bool = 2 != 2
            hyper c5: bool = !(1 > 2)
            hyper c6: bool = [1, 2] == [1, 2]
            hyper c7: bool = 2.5 < 3 && -1 < 0
            input x: f32[batch, 4]
            forward { output y = x }
            """).Hyperparameters;
        Assert.Equal([true, true, true, false, true, true, true], Enumerable.Range(1, 7).Select(k => (bool)h[$"c{k}"]));
    }

    [Fact]
    public void AndOrShortCircuit()
    {
        var h = Elaborate("""
            hyper s1: bool = false && 1 // 0 == 0
            hyper s2: bool = true || [1][5] == 1
            hyper s3: bool = true && false || true
            input x: f32[batch, 4]
            forward { output y = x }
            """).Hyperparameters;
        Assert.Equal((false, true, true), ((bool)h["s1"], (bool)h["s2"], (bool)h["s3"]));
        // Without the short circuit the right side is evaluated, and fails.
        Assert.Equal(Codes.Arithmetic, Assert.Single(Diagnose("hyper s: bool = true && 1 // 0 == 0\n" + X4 + "forward { output y = x }")).Code);
    }

    [Fact]
    public void ListIndexingCountsFromTheEndWithNegativeIndexes()
    {
        var h = Elaborate("""
            hyper ids: ints = [10, 20, 30]
            hyper a: int = ids[1]
            hyper b: int = ids[-1]
            hyper c: int = [[1, 2], [3, 4]][1][0]
            hyper d: int = len(ids)
            input x: f32[batch, 4]
            forward { output y = x }
            """).Hyperparameters;
        Assert.Equal((20L, 30L, 3L, 3L), ((long)h["a"], (long)h["b"], (long)h["c"], (long)h["d"]));
    }

    [Fact]
    public void TensorArithmeticWithNumbersMakesScalarConstants()
    {
        var g = Elaborate(X4 + """
            forward {
              y = -x
              z = 2 * x - 1
              output y = y + z / 2.0
            }
            """);
        Assert.Equal(["neg: f32[batch,4]", "mul: f32[batch,4]", "sub: f32[batch,4]", "div: f32[batch,4]", "add: f32[batch,4]"], Ops(g));
        Assert.Equal([2.0, 1.0, 2.0], Consts(g));
        Assert.All(g.Nodes.Where(n => n.Op == OpKind.Const), c => Assert.Equal("f32[]", c.Type.ToString()));
    }

    [Fact]
    public void ASmallModelPrintsAsExpected()
    {
        var g = Elaborate("""
            model Tiny
            hyper dim: int = 4
            hyper n_layers: int = 2
            input x: f32[batch, dim]
            block layer(x: tensor, name: string, dim: int) {
              weight w: [dim, dim] = "{name}.weight"
              return relu(linear(x, w))
            }
            forward {
              for i in 0 .. n_layers { x = x + layer(x, "layers.{i}", dim) }
              output y = x
            }
            """);
        Assert.Equal("""
            graph Tiny {
              hyper dim = 4
              hyper n_layers = 2
              %0 = input "x" : f32[batch,4]
              %1 = weight "layers.0.weight" : f32[4,4]
              %2 = linear %0, %1 : f32[batch,4]  // i0.layer
              %3 = relu %2 : f32[batch,4]  // i0.layer
              %4 = add %0, %3 : f32[batch,4]  // i0.x
              %5 = weight "layers.1.weight" : f32[4,4]
              %6 = linear %4, %5 : f32[batch,4]  // i1.layer
              %7 = relu %6 : f32[batch,4]  // i1.layer
              %8 = add %4, %7 : f32[batch,4]  // i1.x
              output "y" = %8
            }

            """, Printer.Print(g));
    }
}
