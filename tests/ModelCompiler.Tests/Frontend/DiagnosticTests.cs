using ModelCompiler.Cli;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using static ModelCompiler.Tests.Frontend.Dsl;

namespace ModelCompiler.Tests.Frontend;

/// <summary>
/// Malformed models: each gives exactly one diagnostic with the right code, at the right line and
/// column, saying the right thing; none crashes or hangs.
/// </summary>
public sealed class DiagnosticTests
{
    private const string X4 = "input x: f32[batch, 4]\n";

    /// <summary>name, source, code, line, column, a phrase of the message</summary>
    public static TheoryData<string, string, string, int, int, string> Cases => new()
    {
        // ------------------------------------------------ syntax (MC01xx)
        { "unknown top-level word", "model M\nfrobnicate x\n" + X4 + "forward { output y = x }",
            Codes.UnknownDeclaration, 2, 1, "expected a declaration (import, model, hyper, input, block, forward or ignore), found 'frobnicate'" },
        { "missing ':' in a hyper", "hyper dim int = 4\n" + X4 + "forward { output y = x }",
            Codes.Syntax, 1, 11, "expected ':', found 'int'" },
        { "missing ':' in an input", "input x f32[batch, 4]\nforward { output y = x }",
            Codes.Syntax, 1, 9, "expected ':', found 'f32'" },
        { "missing '=' in a hyper", "hyper dim: int 4\n" + X4 + "forward { output y = x }",
            Codes.Syntax, 1, 16, "expected '=', found '4'" },
        { "missing '=' in a weight", X4 + "forward {\n  weight w: [4, 4] \"w\"\n  output y = linear(x, w)\n}",
            Codes.Syntax, 3, 20, "expected '=', found '\"'" },
        { "missing ')' at the end of a line", X4 + "forward {\n  y = relu(x\n  output y = y\n}",
            Codes.Syntax, 3, 13, "expected ')' or ',', found 'output' on line 4" },
        { "missing ',' between arguments", X4 + "forward {\n  output y = linear(x w)\n}",
            Codes.Syntax, 3, 23, "expected ')' or ',', found 'w'" },
        { "missing ']' at the end of a line", "input x: f32[batch, 4\nforward { output y = x }",
            Codes.Syntax, 1, 22, "expected ',' or ']', found 'forward' on line 2" },
        { "missing ']' of an index", "hyper a: int = [1, 2][0\n" + X4 + "forward { output y = x }",
            Codes.Syntax, 1, 24, "expected ']', found 'input' on line 2" },
        { "operator without a right operand", X4 + "forward {\n  output y = x +\n}",
            Codes.Syntax, 3, 17, "expected an expression, found '}' on line 4" },
        { "ternary without ':'", "hyper a: int = true ? 1\n" + X4 + "forward { output y = x }",
            Codes.Syntax, 1, 24, "expected ':', found 'input' on line 2" },
        { "unfinished from clause", "hyper a: int = 1 from\n" + X4 + "forward { output y = x }",
            Codes.Syntax, 1, 22, "expected config key, found 'input' on line 2" },
        { "reserved word as a hyper name", "hyper for: int = 4\n" + X4 + "forward { output y = x }",
            Codes.Syntax, 1, 7, "found 'for' ('for' is a reserved word and cannot be used as a name)" },
        { "reserved word as a variable", X4 + "forward {\n  if = x\n  output y = x\n}",
            Codes.Syntax, 3, 6, "found '=' ('if' is a reserved word and cannot be used as a name)" },
        { "reserved word as a parameter", "block b(in: tensor) { return in }\n" + X4 + "forward { output y = b(x) }",
            Codes.Syntax, 1, 9, "('in' is a reserved word and cannot be used as a name)" },
        { "not a statement", X4 + "forward {\n  y = x\n  ) \n  output y = y\n}",
            Codes.Syntax, 4, 3, "expected '}' or a statement, found ')'" },
        { "unterminated string", X4 + "forward {\n  weight w: [4, 4] = \"abc\n  output y = x\n}",
            Codes.UnterminatedString, 3, 22, "unterminated string" },
        { "invalid escape", X4 + "forward {\n  output \"a\\qb\" = x\n}",
            Codes.UnterminatedString, 3, 12, "invalid escape" },
        { "unclosed brace at end of file", X4 + "forward {\n  if true {\n    output y = relu(x)\n",
            Codes.UnclosedBrace, 4, 23, "the '{' at line 3, column 11 is not closed" },
        { "exponent without digits", "hyper a: float = 1e\n" + X4 + "forward { output y = x }",
            Codes.BadNumber, 1, 18, "'1e' is not a valid number" },
        { "two decimal points", "hyper a: float = 1.2.3\n" + X4 + "forward { output y = x }",
            Codes.BadNumber, 1, 18, "'1.2.3' is not a valid number" },
        { "integer too large", "hyper a: int = 99999999999999999999\n" + X4 + "forward { output y = x }",
            Codes.BadNumber, 1, 16, "'99999999999999999999' is not a valid number" },
        { "empty interpolation", X4 + "forward {\n  output \"a.{ }.b\" = x\n}",
            Codes.BadInterpolation, 3, 15, "invalid interpolation" },
        { "unclosed interpolation", X4 + "forward {\n  output \"a.{1\" = x\n}",
            Codes.BadInterpolation, 3, 15, "invalid interpolation" },
        { "unmatched '}' in a string", X4 + "forward {\n  output \"a.}\" = x\n}",
            Codes.BadInterpolation, 3, 13, "unmatched '}'" },

        // ------------------------------------------------ names, values, declarations (MC02xx)
        { "unknown name", "hyper n_heads: int = 4\n" + X4 + "forward {\n  y = x * n_haeds\n  output y = y\n}",
            Codes.UnknownName, 4, 11, "unknown name 'n_haeds'; did you mean 'n_heads'?" },
        { "hyper used before it is declared", "hyper a: int = b\nhyper b: int = 1\n" + X4 + "forward { output y = x }",
            Codes.UnknownName, 1, 16, "hyperparameter 'b' is declared later" },
        { "unknown function", X4 + "forward {\n  output y = rleu(x)\n}",
            Codes.UnknownFunction, 3, 14, "unknown function or block 'rleu'; did you mean 'relu'?" },
        { "too many arguments", X4 + "forward {\n  output y = relu(x, x)\n}",
            Codes.BadArguments, 3, 22, "relu takes 1 argument, got 2" },
        { "unknown named argument", X4 + "forward {\n  output y = softmax(x, axs: 1)\n}",
            Codes.BadArguments, 3, 25, "softmax has no parameter 'axs' (its parameters: x, axis)" },
        { "missing argument", X4 + "forward {\n  output y = linear(x)\n}",
            Codes.BadArguments, 3, 14, "linear: missing argument 'weight'" },
        { "argument given twice", X4 + "forward {\n  output y = softmax(x, axis: 1, axis: 0)\n}",
            Codes.BadArguments, 3, 34, "'axis' is given twice" },
        { "duplicate hyper", "hyper a: int = 1\nhyper a: int = 2\n" + X4 + "forward { output y = x }",
            Codes.Duplicate, 2, 1, "hyperparameter 'a' is already declared at t.arch:1:1" },
        { "duplicate block", "block b(x: tensor) { return x }\nblock b(x: tensor) { return x }\n" + X4 + "forward { output y = b(x) }",
            Codes.Duplicate, 2, 1, "block 'b' is already declared at t.arch:1:1" },
        { "duplicate output", X4 + "forward {\n  output y = x\n  output y = x\n}",
            Codes.Duplicate, 4, 3, "output 'y' is declared twice" },
        { "string where an int is expected", X4 + "forward {\n  output y = softmax(x, axis: \"one\")\n}",
            Codes.WrongValueType, 3, 31, "softmax: 'axis' expects an int, got the string \"one\"" },
        { "condition that is not a bool", X4 + "forward {\n  if 1 { x = relu(x) }\n  output y = x\n}",
            Codes.WrongValueType, 3, 6, "expected a bool, got an int (1)" },
        { "index out of range", X4 + "forward {\n  a = [1, 2][5]\n  output y = x\n}",
            Codes.WrongValueType, 3, 14, "index 5 is out of range for a list of 2" },
        { "hyper default of the wrong type", "hyper a: int = \"four\"\n" + X4 + "forward { output y = x }",
            Codes.BadHyperValue, 1, 16, "the default of 'a' is the string \"four\" but it is declared int" },
        { "return in forward", X4 + "forward {\n  return x\n}",
            Codes.ReturnMisplaced, 3, 3, "'return' is only allowed in a block" },
        { "output in a block", "block b(x: tensor) {\n  output z = x\n}\n" + X4 + "forward { output y = b(x) }",
            Codes.ReturnMisplaced, 2, 3, "'output' is only allowed in forward" },
        { "block without return", "block b(x: tensor) { y = relu(x) }\n" + X4 + "forward { output y = b(x) }",
            Codes.ReturnMisplaced, 1, 1, "block 'b' ended without 'return'" },
        { "no forward", "model M\n" + X4,
            Codes.MissingDeclaration, 1, 1, "the model has no 'forward { ... }' declaration" },
        { "division by zero in a hyper", "hyper a: int = 4\nhyper b: int = a // (a - 4)\n" + X4 + "forward { output y = x }",
            Codes.Arithmetic, 2, 16, "integer division by zero" },
        { "integer overflow", "hyper a: int = 9223372036854775807 + 1\n" + X4 + "forward { output y = x }",
            Codes.Arithmetic, 1, 16, "integer overflow in '+'" },
        { "unknown hyper type", "hyper a: integer = 4\n" + X4 + "forward { output y = x }",
            Codes.UnknownType, 1, 10, "unknown hyperparameter type 'integer'" },
        { "unknown parameter type", "block b(x: tnsor) { return x }\n" + X4 + "forward { output y = b(x) }",
            Codes.UnknownType, 1, 12, "unknown parameter type 'tnsor'" },
        { "unknown element type", "input x: q32[batch, 4]\nforward { output y = x }",
            Codes.UnknownType, 1, 10, "unknown element type 'q32'" },
        { "recursion", "block b(x: tensor) { return b(x) }\n" + X4 + "forward { output y = b(x) }",
            Codes.Recursion, 1, 29, "block 'b' calls itself" },
        { "mutual recursion", "block a(x: tensor) { return b(x) }\nblock b(x: tensor) { return a(x) }\n" + X4 + "forward { output y = a(x) }",
            Codes.Recursion, 2, 29, "block 'a' calls itself" },
        { "tied weight with two shapes", X4 + "forward {\n  weight a: [4, 4] = \"w\"\n  weight b: [4, 8] = \"w\"\n  output y = linear(x, a)\n}",
            Codes.BadWeight, 4, 3, "weight 'w' is declared as f32[4,8] here but as f32[4,4] at t.arch:3:3" },
        { "chunk index out of range", X4 + "forward {\n  weight w: [4, 4] = \"w\" chunk(3, 3)\n  output y = linear(x, w)\n}",
            Codes.BadWeight, 3, 26, "chunk(3, 3): index must be in 0..2" },
        { "require that fails", "hyper a: int = 4\n" + X4 + "forward {\n  require(a == 3, \"a must be 3, got {a}\")\n  output y = x\n}",
            Codes.UnsupportedConfig, 4, 3, "a must be 3, got 4" },
        { "loop too long to unroll", X4 + "forward {\n  for i in 0 .. 1000000000 { x = x }\n  output y = x\n}",
            Codes.TooLarge, 3, 3, "this loop would unroll 1000000000 iterations" },
        { "loops too long together", X4 + "forward {\n  for i in 0 .. 100000 { for j in 0 .. 100000 { } }\n  output y = x\n}",
            Codes.TooLarge, 3, 26, "the model's loops unroll more than 1000000 iterations in total" },

        // ------------------------------------------------ shapes (MC03xx)
        { "linear with mismatched shapes", X4 + "forward {\n  weight w: [8, 5] = \"w\"\n  output y = linear(x, w)\n}",
            Codes.ShapeMismatch, 4, 14, "linear: input f32[batch,4] has last dimension 4 but weight f32[8,5] expects 5" },
        { "shapes that do not broadcast", X4 + "input z: f32[batch, 5]\nforward {\n  output y = x + z\n}",
            Codes.ShapeMismatch, 4, 14, "add: shapes [batch,4] and [batch,5] do not broadcast" },
        { "attention on a matrix", X4 + "forward {\n  output y = attention(x, x, x)\n}",
            Codes.ShapeMismatch, 3, 14, "attention expects q as [batch, seq, heads, head_dim], got f32[batch,4]" },
        { "zero weight dimension", X4 + "forward {\n  weight w: [0, 4] = \"w\"\n  output y = linear(x, w)\n}",
            Codes.BadShape, 3, 14, "dimension 0 must be positive" },
        { "negative weight dimension", "hyper d: int = -4\n" + X4 + "forward {\n  weight w: [d, 4] = \"w\"\n  output y = linear(x, w)\n}",
            Codes.BadShape, 4, 14, "dimension -4 must be positive" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ReportsOneDiagnostic(string name, string text, string code, int line, int column, string phrase)
    {
        var all = Diagnose(text);
        var d = Assert.Single(all);
        Assert.True(d.Code == code && d.Span.Line == line && d.Span.Column == column && d.Message.Contains(phrase, StringComparison.Ordinal),
            $"{name}: expected {code} at {line}:{column} containing \"{phrase}\", got\n{d.Render(text)}");
        Assert.Equal(Dsl.FileName, d.Span.File);
    }

    [Fact]
    public void ThreeBrokenDeclarationsGiveThreeDiagnosticsAndNoCascade()
    {
        // A syntax error in hyper a, an unknown type in hyper b, a syntax error in block c; forward uses
        // all three, and neither they nor the model's missing pieces are reported again.
        const string text = """
            hyper a: int =
            hyper b: integer = 2
            input x: f32[batch, 4]
            block c(x: tensor {
              return x
            }
            forward {
              output y = c(x) * a * b
            }
            """;
        var all = Diagnose(text);
        Assert.Equal(
            [(Codes.Syntax, 1, 15), (Codes.UnknownType, 2, 10), (Codes.Syntax, 4, 19)],
            all.Select(d => (d.Code, d.Span.Line, d.Span.Column)));
        Assert.Equal("expected an expression, found 'hyper' on line 2", all[0].Message);
        Assert.Contains("unknown hyperparameter type 'integer'", all[1].Message);
        Assert.Equal("expected ')', ',' or '=', found '{'", all[2].Message);
    }

    [Fact]
    public void DeeplyNestedBlockCallsAreNotCalledRecursion()
    {
        // b0 calls b1 calls ... b69: no recursion, but deeper than the 64 calls the elaborator allows.
        var blocks = string.Concat(Enumerable.Range(0, 70).Select(i => i < 69
            ? $"block b{i}(x: tensor) {{ return b{i + 1}(x) }}\n"
            : $"block b{i}(x: tensor) {{ return relu(x) }}\n"));
        var d = Assert.Single(Diagnose(blocks + X4 + "forward { output y = b0(x) }"));
        Assert.Equal((Codes.TooLarge, 64, 31), (d.Code, d.Span.Line, d.Span.Column));
        Assert.StartsWith("block calls are nested more than 64 deep (calling 'b64')", d.Message);

        var g = Elaborate(blocks.Replace("b50(x) }", "relu(x) }") + X4 + "forward { output y = b0(x) }");
        Assert.Single(g.Nodes, n => n.Op == OpKind.Relu);
    }

    [Fact]
    public void ABrokenForwardIsNotAlsoReportedAsMissing()
    {
        var all = Diagnose("model M\n" + X4 + "forward {\n  output y = relu(x\n}");
        Assert.Equal(Codes.Syntax, Assert.Single(all).Code);
    }

    [Fact]
    public void ImportsAreReportedWhenTheFileIsMissingOrTheSourceIsText()
    {
        var dir = Directory.CreateTempSubdirectory("mc-diag-");
        try
        {
            var main = Path.Combine(dir.FullName, "main.arch");
            File.WriteAllText(main, "# comment\nimport \"nope.arch\"\n" + X4 + "forward { output y = x }");
            var bag = new DiagnosticBag();
            Assert.Null(ArchLoader.Load(main, bag));
            var d = Assert.Single(bag.Items);
            Assert.Equal((Codes.ImportFailed, 2, 1), (d.Code, d.Span.Line, d.Span.Column));
            Assert.Contains("imported file 'nope.arch' not found", d.Message);

            var viaText = Assert.Single(Diagnose("import \"lib.arch\"\n" + X4 + "forward { output y = x }"));
            Assert.Equal((Codes.ImportFailed, 1, 1), (viaText.Code, viaText.Span.Line, viaText.Span.Column));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void AnImportedFileMayNotDeclareHypers()
    {
        var dir = Directory.CreateTempSubdirectory("mc-diag-");
        try
        {
            File.WriteAllText(Path.Combine(dir.FullName, "lib.arch"), "block b(x: tensor) { return x }\nhyper h: int = 1\n");
            var main = Path.Combine(dir.FullName, "main.arch");
            File.WriteAllText(main, "import \"lib.arch\"\n" + X4 + "forward { output y = b(x) }");
            var bag = new DiagnosticBag();
            Assert.Null(ArchLoader.Load(main, bag));
            var d = Assert.Single(bag.Items);
            Assert.Equal((Codes.MissingDeclaration, 2, 1), (d.Code, d.Span.Line, d.Span.Column));
            Assert.EndsWith("lib.arch", d.Span.File);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("parentheses")]
    [InlineData("calls")]
    [InlineData("lists")]
    [InlineData("unary")]
    [InlineData("chain")]
    [InlineData("ifs")]
    public void PathologicalNestingIsADiagnosticNotACrash(string kind)
    {
        // Far beyond any stack (a nesting level costs the parser kilobytes, a chain link the checker a frame),
        // and small enough to stay fast.
        int n = kind is "chain" or "unary" ? 30_000 : 10_000;
        string text = kind switch
        {
            "parentheses" => X4 + "forward {\n  output y = " + new string('(', n) + "x" + new string(')', n) + "\n}",
            "calls" => X4 + "forward {\n  output y = " + string.Concat(Enumerable.Repeat("relu(", n)) + "x" + new string(')', n) + "\n}",
            "lists" => "hyper a: ints = " + new string('[', n) + new string(']', n) + "\n" + X4 + "forward { output y = x }",
            "unary" => X4 + "forward {\n  output y = " + new string('-', n) + "x\n}",
            "chain" => "hyper a: int = 1" + string.Concat(Enumerable.Repeat(" + 1", n)) + "\n" + X4 + "forward { output y = x }",
            _ => X4 + "forward {\n" + string.Concat(Enumerable.Repeat("if true {\n", n)) + string.Concat(Enumerable.Repeat("}\n", n)) + "output y = x\n}",
        };
        var d = Assert.Single(Diagnose(text));
        Assert.Equal(Codes.TooDeep, d.Code);
        Assert.Contains("nested too deeply", d.Message);
    }

    [Fact]
    public void ModerateNestingIsFine()
    {
        var g = Elaborate("hyper a: int = " + new string('(', 40) + "1" + new string(')', 40) + string.Concat(Enumerable.Repeat(" + 1", 500)) + "\n"
                          + X4 + "forward { output y = " + string.Concat(Enumerable.Repeat("relu(", 40)) + "x" + new string(')', 40) + " }");
        Assert.Equal(501L, g.Hyperparameters["a"]);
        Assert.Equal(40, g.Nodes.Count(n => n.Op == OpKind.Relu));
    }

    // ---------------------------------------------------------------- rendering

    [Fact]
    public void RenderShowsTheSourceLineWithACaretUnderTheColumn()
    {
        const string text = "input x: f32[batch, 4]\nforward {\n\toutput y = rleu(x)\n}\n";
        var d = Assert.Single(Diagnose(text));
        Assert.Equal((3, 13), (d.Span.Line, d.Span.Column));
        Assert.Equal(
            "t.arch:3:13: error MC0202: unknown function or block 'rleu'; did you mean 'relu'?\n" +
            "  \toutput y = rleu(x)\n" +
            "  \t           ^",   // the tab is kept so the caret lines up however tabs are shown
            d.Render(text));
    }

    [Fact]
    public void RenderHandlesCrlfAndPositionsPastTheLine()
    {
        var d = new Diagnostic(Severity.Error, Codes.Syntax, new SourceSpan("f.arch", 2, 40), "m");
        Assert.Equal("f.arch:2:40: error MC0101: m\n  ab\n    ^", d.Render("x\r\nab\r\n"));
        Assert.Equal("f.arch:2:40: error MC0101: m", d.Render(null));
        Assert.Equal("f.arch:2:40: error MC0101: m", d.Render("one line"));
    }

    [Fact]
    public void TheBagRendersEveryDiagnosticSortedByPosition()
    {
        var bag = new DiagnosticBag();
        bag.AddSource("f.arch", "abc\ndef\n");
        bag.Error(Codes.UnknownName, new SourceSpan("f.arch", 2, 2), "second");
        bag.Error(Codes.UnknownName, new SourceSpan("f.arch", 1, 3), "first");
        Assert.Equal("f.arch:1:3: error MC0201: first\n  abc\n    ^\nf.arch:2:2: error MC0201: second\n  def\n   ^", bag.Render());
    }

    // ---------------------------------------------------------------- mc check

    private static (int Code, string Out, string Err) Mc(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = McApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private static string TempModel(string text)
    {
        var path = Path.Combine(Path.GetTempPath(), $"mc-check-{Guid.NewGuid():N}.arch");
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void CheckPrintsEveryDiagnosticAndExitsOne()
    {
        var path = TempModel("hyper a: int =\nhyper b: integer = 2\n" + X4 + "forward {\n  output y = rleu(x)\n}\n");
        try
        {
            var (code, stdout, stderr) = Mc("check", path);
            Assert.Equal(McApp.UserError, code);
            Assert.Equal("", stdout);
            Assert.Contains($"{path}:1:15: error MC0101: expected an expression, found 'hyper' on line 2", stderr);
            Assert.Contains($"{path}:2:10: error MC0211: unknown hyperparameter type 'integer'", stderr);
            Assert.Contains($"{path}:5:14: error MC0202: unknown function or block 'rleu'; did you mean 'relu'?", stderr);
            Assert.Contains("\n    output y = rleu(x)\n               ^\n", stderr);
            Assert.EndsWith("3 errors\n", stderr.ReplaceLineEndings("\n"));
            Assert.DoesNotContain("   at ", stderr);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("hyper a: int = 4 // 0\n" + X4 + "forward { output y = x }", "1:16: error MC0210: integer division by zero")]
    [InlineData(X4 + "forward {\n  for i in 0 .. 1000000000 { x = x }\n  output y = x\n}", "3:3: error MC0215:")]
    [InlineData(X4 + "forward {\n  output y = attention(x, x, x)\n}", "3:14: error MC0301: attention")]
    [InlineData(X4 + "forward {\n  weight w: [4611686018427387904, 4] = \"w\" chunk(0, 4)\n  output y = x\n}", "3:44: error MC0210: integer overflow")]
    public void CheckReportsElaborationErrorsWithoutAStackTrace(string text, string expected)
    {
        var path = TempModel(text);
        try
        {
            var (code, _, stderr) = Mc("check", path);
            Assert.Equal(McApp.UserError, code);
            Assert.Contains($"{path}:{expected}", stderr);
            Assert.Contains("^", stderr);   // rendered with the source line and a caret
            Assert.DoesNotContain("   at ", stderr);
            Assert.DoesNotContain("internal error", stderr);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void CheckAcceptsTheExamples()
    {
        var (code, stdout, stderr) = Mc("check", Path.Combine(AppContext.BaseDirectory, "examples", "gpt2.arch"), "--set", "n_layers=1", "dim=64", "n_heads=4", "vocab=256");
        Assert.True(code == McApp.Ok, stderr);
        Assert.Contains("ok (GPT2:", stdout);
    }
}
