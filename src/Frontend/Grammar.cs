using System.Collections.Immutable;
using System.Globalization;
using System.Runtime.CompilerServices;
using ModelCompiler.IR;
using Sprache;

namespace ModelCompiler.Frontend;

/// <summary>
/// The grammar of .arch files, in Sprache; the only file that knows Sprache exists.
/// Sprache backtracks and keeps little about why an alternative failed, so every terminal reports
/// its failures to a <see cref="FailureTracker"/>: the furthest position any terminal reached and
/// what it expected there become the diagnostic (the technique Parsec uses). Top-level declarations
/// are parsed one at a time so that an error in one does not hide errors in the next.
/// </summary>
internal sealed class Grammar
{
    private readonly string _file;
    private readonly FailureTracker _track = new();

    public static readonly ImmutableHashSet<string> TopLevelKeywords =
        ImmutableHashSet.Create("import", "model", "hyper", "input", "block", "forward", "ignore");

    private static readonly ImmutableHashSet<string> Reserved =
        TopLevelKeywords.Union(["weight", "for", "in", "if", "else", "return", "output", "from", "true", "false"]);

    public Grammar(string file)
    {
        _file = file;
        Build();
    }

    /// <summary>Parses a whole file, collecting one diagnostic per broken top-level declaration.</summary>
    public ArchFile ParseFile(string text, DiagnosticBag diagnostics)
    {
        var decls = ImmutableArray.CreateBuilder<Decl>();
        IInput input = new Input(text);
        input = Skip(input);
        while (!input.AtEnd)
        {
            _track.Reset();
            var start = input;
            var result = _declaration(input);
            if (result.WasSuccessful)
            {
                decls.Add(result.Value);
                input = result.Remainder;
                continue;
            }
            diagnostics.Add(_track.ToDiagnostic(_file, text, start));
            if (BrokenHeader(text, start.Position) is var (keyword, name))
                decls.Add(new BrokenDecl(SpanOf(start), keyword, name));
            input = Resynchronise(text, start, _track.FurthestPosition);
        }
        return new ArchFile(_file, text, decls.ToImmutable());
    }

    /// <summary>Parses one expression (used by tests and by <c>--set</c> values).</summary>
    public IResult<Expr> ParseExpression(string text) => (from e in _expr from end in Parse.Return(0).End() select e)(Skip(new Input(text)));

    // ---------------------------------------------------------------- recovery

    /// <summary>
    /// After an error, continue at the next line that starts (in column 1) with a top-level keyword,
    /// at or after the failure; the failed declaration's own start never counts.
    /// </summary>
    private IInput Resynchronise(string text, IInput start, int failurePosition)
    {
        int pos = Math.Max(failurePosition, start.Position + 1);
        // Back up to the start of the failure's line: the failure may sit on the next declaration's keyword.
        while (pos > start.Position + 1 && pos <= text.Length && text[pos - 1] != '\n') pos--;
        for (; pos < text.Length; pos++)
        {
            if (pos > 0 && text[pos - 1] != '\n') continue;
            int end = pos;
            while (end < text.Length && (char.IsLetter(text[end]) || text[end] == '_')) end++;
            if (TopLevelKeywords.Contains(text[pos..end])) break;
        }
        IInput input = new Input(text);
        while (input.Position < pos && !input.AtEnd) input = input.Advance();
        return input;
    }

    /// <summary>
    /// The keyword and name ("hyper dim", "block mlp", "forward") of a declaration that failed to parse,
    /// so that later checks know it exists and do not report its uses as unknown names.
    /// </summary>
    private static (string Keyword, string? Name)? BrokenHeader(string text, int pos)
    {
        string Word(ref int p)
        {
            int begin = p;
            while (p < text.Length && IsIdentPart(text[p])) p++;
            return text[begin..p];
        }
        var keyword = Word(ref pos);
        if (!TopLevelKeywords.Contains(keyword)) return null;
        while (pos < text.Length && text[pos] is ' ' or '\t') pos++;
        var name = pos < text.Length && IsIdentStart(text[pos]) ? Word(ref pos) : null;
        return (keyword, name is null || Reserved.Contains(name) ? null : name);
    }

    /// <summary>
    /// Fails with "nested too deeply" (MC0107) instead of overflowing the stack, which would end the
    /// process: every recursive rule (expressions, bodies) passes through here.
    /// </summary>
    private Parser<T> Guard<T>(Parser<T> parser) => i =>
    {
        if (RuntimeHelpers.TryEnsureSufficientExecutionStack()) return parser(i);
        _track.Hard(i, Codes.TooDeep, "nested too deeply: simplify this expression or statement (split it with intermediate names)");
        return Result.Failure<T>(i, "nested too deeply", ["less nesting"]);
    };

    // ---------------------------------------------------------------- terminals

    private Parser<Decl> _declaration = null!;
    private Parser<Expr> _expr = null!;

    private SourceSpan SpanOf(IInput i) => new(_file, i.Line, i.Column);

    /// <summary>Whitespace and '#' comments.</summary>
    private static IInput Skip(IInput i)
    {
        while (!i.AtEnd)
        {
            if (char.IsWhiteSpace(i.Current)) i = i.Advance();
            else if (i.Current == '#') { while (!i.AtEnd && i.Current != '\n') i = i.Advance(); }
            else break;
        }
        return i;
    }

    private static bool IsIdentStart(char c) => char.IsAsciiLetter(c) || c == '_';
    private static bool IsIdentPart(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';

    private static string Describe(IInput i)
    {
        if (i.AtEnd) return "end of file";
        if (IsIdentPart(i.Current))
        {
            var sb = new System.Text.StringBuilder();
            for (var j = i; !j.AtEnd && IsIdentPart(j.Current) && sb.Length < 24; j = j.Advance()) sb.Append(j.Current);
            return $"'{sb}'";
        }
        return i.Current == '\n' || i.Current == '\r' ? "end of line" : $"'{i.Current}'";
    }

    private IResult<T> Fail<T>(IInput i, string expected)
    {
        _track.Expect(i, expected);
        return Result.Failure<T>(i, $"unexpected {Describe(i)}", [expected]);
    }

    /// <summary>A punctuation or operator token (whole, so "=" does not match the start of "==").</summary>
    private Parser<string> Sym(string s, params string[] notFollowedBy) => SymCore(s, quiet: false, notFollowedBy);

    /// <summary>An operator that may continue an expression: not listed in "expected ..." messages, which would otherwise name every operator.</summary>
    private Parser<string> Op(string s, params string[] notFollowedBy) => SymCore(s, quiet: true, notFollowedBy);

    private Parser<string> SymCore(string s, bool quiet, string[] notFollowedBy) => i =>
    {
        var j = i;
        foreach (var c in s)
        {
            if (j.AtEnd || j.Current != c) return quiet ? Result.Failure<string>(i, "operator", []) : Fail<string>(i, $"'{s}'");
            j = j.Advance();
        }
        foreach (var f in notFollowedBy)
            if (!j.AtEnd && f.Length == 1 && j.Current == f[0]) return quiet ? Result.Failure<string>(i, "operator", []) : Fail<string>(i, $"'{s}'");
        return Result.Success(s, Skip(j));
    };

    private Parser<string> Keyword(string word) => i =>
    {
        var j = i;
        foreach (var c in word)
        {
            if (j.AtEnd || j.Current != c) return Fail<string>(i, $"'{word}'");
            j = j.Advance();
        }
        if (!j.AtEnd && IsIdentPart(j.Current)) return Fail<string>(i, $"'{word}'");
        return Result.Success(word, Skip(j));
    };

    private Parser<(string Name, SourceSpan Span)> Identifier(string what = "identifier") => i =>
    {
        if (i.AtEnd || !IsIdentStart(i.Current)) return Fail<(string, SourceSpan)>(i, what);
        var sb = new System.Text.StringBuilder();
        var j = i;
        while (!j.AtEnd && IsIdentPart(j.Current)) { sb.Append(j.Current); j = j.Advance(); }
        var name = sb.ToString();
        if (Reserved.Contains(name))
        {
            _track.ReservedWord(i, name);
            return Fail<(string, SourceSpan)>(i, what);
        }
        return Result.Success((name, SpanOf(i)), Skip(j));
    };

    private Parser<Expr> Number => i =>
    {
        if (i.AtEnd || !char.IsAsciiDigit(i.Current)) return Fail<Expr>(i, "number");
        var sb = new System.Text.StringBuilder();
        var j = i;
        bool isFloat = false;
        while (!j.AtEnd && (char.IsAsciiLetterOrDigit(j.Current) || j.Current == '.' || j.Current == '_'
                            || ((j.Current == '-' || j.Current == '+') && sb.Length > 0 && (sb[^1] == 'e' || sb[^1] == 'E'))))
        {
            if (j.Current == '.')
            {
                // "0..n" is a range, not a number with two dots.
                var next = j.Advance();
                if (!next.AtEnd && next.Current == '.') break;
            }
            if (j.Current is '.' or 'e' or 'E') isFloat = true;
            if (j.Current != '_') sb.Append(j.Current);
            j = j.Advance();
        }
        var text = sb.ToString();
        var span = SpanOf(i);
        if (!isFloat && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var l))
            return Result.Success<Expr>(new IntLit(span, l), Skip(j));
        if (isFloat && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d))
            return Result.Success<Expr>(new FloatLit(span, d), Skip(j));
        _track.Hard(i, Codes.BadNumber, $"'{text}' is not a valid number (expected an integer like 4096 or a float like 1e-5)");
        return Result.Failure<Expr>(i, "bad number", ["number"]);
    };

    /// <summary>"text {expr} text": single-line, with \" \\ \n \t escapes and {{ }} for literal braces.</summary>
    private Parser<StringLit> StringLiteral => i =>
    {
        if (i.AtEnd || i.Current != '"') return Fail<StringLit>(i, "string");
        var span = SpanOf(i);
        var parts = ImmutableArray.CreateBuilder<object>();
        var text = new System.Text.StringBuilder();
        var j = i.Advance();
        while (true)
        {
            if (j.AtEnd || j.Current == '\n')
            {
                _track.Hard(i, Codes.UnterminatedString, "unterminated string: expected '\"' before the end of the line");
                return Result.Failure<StringLit>(i, "unterminated string", ["'\"'"]);
            }
            char c = j.Current;
            if (c == '"') { j = j.Advance(); break; }
            if (c == '\\')
            {
                var e = j.Advance();
                if (e.AtEnd || e.Current is not ('"' or '\\' or 'n' or 't'))
                {
                    _track.Hard(j, Codes.UnterminatedString, "invalid escape in string (expected \\\", \\\\, \\n or \\t)");
                    return Result.Failure<StringLit>(j, "bad escape", ["escape"]);
                }
                text.Append(e.Current switch { 'n' => '\n', 't' => '\t', var x => x });
                j = e.Advance();
                continue;
            }
            if (c == '{' || c == '}')
            {
                var next = j.Advance();
                if (!next.AtEnd && next.Current == c) { text.Append(c); j = next.Advance(); continue; }
                if (c == '}')
                {
                    _track.Hard(j, Codes.BadInterpolation, "unmatched '}' in string (write '}}' for a literal brace)");
                    return Result.Failure<StringLit>(j, "bad interpolation", ["'}}'"]);
                }
                if (text.Length > 0) { parts.Add(text.ToString()); text.Clear(); }
                var inner = Skip(next);
                var r = _expr(inner);
                if (!r.WasSuccessful || r.Remainder.AtEnd || r.Remainder.Current != '}')
                {
                    var at = r.WasSuccessful ? r.Remainder : inner;
                    _track.Hard(at, Codes.BadInterpolation, "invalid interpolation in string: expected an expression and '}' after '{' (write '{{' for a literal brace)");
                    return Result.Failure<StringLit>(at, "bad interpolation", ["'}'"]);
                }
                parts.Add(r.Value);
                j = r.Remainder.Advance();
                continue;
            }
            text.Append(c);
            j = j.Advance();
        }
        if (text.Length > 0 || parts.Count == 0) parts.Add(text.ToString());
        return Result.Success(new StringLit(span, parts.ToImmutable()), Skip(j));
    };

    private static Parser<T> Located<T>(Func<SourceSpan, Parser<T>> make, Func<IInput, SourceSpan> span) =>
        i => make(span(i))(i);

    // ---------------------------------------------------------------- grammar

    private void Build()
    {
        Parser<Expr> expr = Parse.Ref(() => _expr);

        // name: 4096 / eps: 1e-5
        // The ':' and the call's '(' are quiet: "expected ')' or ','" reads better than also listing them.
        Parser<Arg> arg =
            (from name in Identifier()
             from colon in Op(":")
             from value in expr
             select new Arg(name.Span, name.Name, value))
            .Or(i => expr.Select(e => new Arg(e.Span, null, e))(i));

        Parser<ImmutableArray<T>> CommaList<T>(Parser<T> item, string close) =>
            (from first in item
             from rest in (from comma in Sym(",") from x in item select x).Many()
             from trailing in Sym(",").Optional()
             select rest.Prepend(first).ToImmutableArray())
            .Or(Parse.Return(ImmutableArray<T>.Empty));

        // linear(x, w, eps: 1e-5)
        Parser<Expr> call =
            from callee in Identifier()
            from open in Op("(")
            from args in CommaList(arg, ")")
            from close in Sym(")")
            select (Expr)new Call(callee.Span, callee.Name, args);

        Parser<Expr> list = i =>
            (from open in Sym("[")
             from items in CommaList(expr, "]")
             from close in Sym("]")
             select (Expr)new ListExpr(SpanOf(i), items))(i);

        Parser<Expr> parens = from open in Sym("(") from e in expr from close in Sym(")") select e;

        Parser<Expr> boolean = i =>
            Keyword("true").Return(true).Or(Keyword("false").Return(false)).Select(b => (Expr)new BoolLit(SpanOf(i), b))(i);

        Parser<Expr> primary =
            Number
            .Or(StringLiteral.Select(s => (Expr)s))
            .Or(boolean)
            .Or(call)
            .Or(Identifier().Select(id => (Expr)new Ident(id.Span, id.Name)))
            .Or(list)
            .Or(parens);

        // x[0]
        Parser<Expr> postfix =
            from target in primary
            from indexes in (from open in Op("[") from at in expr from close in Sym("]") select at).XMany()
            select indexes.Aggregate(target, (t, at) => new Index(t.Span, t, at));

        // Prefix operators and operator chains are loops, not recursion, so that a long expression
        // (a + b + ... or - - - x) cannot overflow the parser's stack.
        Parser<string> prefixOp = Sym("-").Or(Sym("!", "="));
        Parser<Expr> unary = i =>
        {
            var ops = new List<(string Op, IInput At)>();
            var j = i;
            for (var r = prefixOp(j); r.WasSuccessful; r = prefixOp(j))
            {
                ops.Add((r.Value, j));
                j = r.Remainder;
            }
            var operand = postfix(j);
            if (!operand.WasSuccessful) return operand;
            var e = operand.Value;
            for (int k = ops.Count - 1; k >= 0; k--) e = new Unary(SpanOf(ops[k].At), ops[k].Op, e);
            return Result.Success(e, operand.Remainder);
        };

        Parser<Expr> Chain(Parser<string> op, Parser<Expr> operand) => i =>
        {
            var first = operand(i);
            if (!first.WasSuccessful) return first;
            var acc = first.Value;
            var rest = first.Remainder;
            for (var o = op(rest); o.WasSuccessful; o = op(rest))
            {
                var right = operand(o.Remainder);
                if (!right.WasSuccessful) return right;   // "a +" with nothing after the operator
                acc = new Binary(acc.Span, o.Value, acc, right.Value);
                rest = right.Remainder;
            }
            return Result.Success(acc, rest);
        };

        var mul = Chain(Op("*").Or(Op("//")).Or(Op("/")).Or(Op("%")), unary);
        var add = Chain(Op("+").Or(Op("-")), mul);
        var cmp = Chain(Op("==").Or(Op("!=")).Or(Op("<=")).Or(Op(">=")).Or(Op("<")).Or(Op(">")), add);
        var and = Chain(Op("&&"), cmp);
        var or = Chain(Op("||"), and);
        _expr = Guard(
            from condition in or
            from rest in (from q in Op("?") from a in expr from colon in Sym(":") from b in expr select (a, b)).XOptional()
            select rest.IsDefined ? new Conditional(condition.Span, condition, rest.Get().a, rest.Get().b) : condition);

        Parser<TypeRef> typeRef = Identifier("type").Select(t => new TypeRef(t.Span, t.Name));

        // f32[vocab, dim]  or  [vocab, dim] (weights default to f32)
        Parser<TensorTypeExpr> tensorType = i =>
            (from dtype in Identifier("element type (f32, i64, ...)").Optional()
             from open in Sym("[")
             from dims in CommaList(expr, "]")
             from close in Sym("]")
             select new TensorTypeExpr(SpanOf(i), dtype.IsDefined ? dtype.Get().Name : "", dims))(i);

        Parser<ImmutableArray<Stmt>> body = null!;
        Parser<ImmutableArray<Stmt>> bodyRef = Parse.Ref(() => body);

        Parser<Stmt> Statement(string keyword, Func<SourceSpan, Parser<Stmt>> rest) => i =>
            (from kw in Keyword(keyword) from s in rest(SpanOf(i)) select s)(i);

        Parser<WeightView> view = i =>
            Keyword("transposed").Select(_ => new WeightView(SpanOf(i), "transposed", ImmutableArray<Expr>.Empty))
            .Or(from kw in Keyword("chunk")
                from open in Sym("(")
                from args in CommaList(expr, ")")
                from close in Sym(")")
                select new WeightView(SpanOf(i), "chunk", args))(i);

        // weight wq: [n_heads * head_dim, dim] = "{p}.q_proj.weight"
        var weightStmt = Statement("weight", span =>
            from name in Identifier("weight name")
            from colon in Sym(":")
            from type in tensorType
            from eq in Sym("=", "=")
            from source in expr
            from views in view.XMany()
            select (Stmt)new WeightDecl(span, name.Name, type, source, views.ToImmutableArray()));

        // for i in 0 .. n_layers { ... }
        var forStmt = Statement("for", span =>
            from v in Identifier("loop variable")
            from kwIn in Keyword("in")
            from a in expr
            from dots in Sym("..")
            from b in expr
            from stmts in bodyRef
            select (Stmt)new For(span, v.Name, a, b, stmts));

        Parser<Stmt> ifStmt = null!;
        ifStmt = Statement("if", span =>
            from condition in expr
            from then in bodyRef
            from otherwise in (from kw in Keyword("else")
                               from e in bodyRef.Or(Parse.Ref(() => ifStmt).Select(s => ImmutableArray.Create(s)))
                               select e).XOptional()
            select (Stmt)new If(span, condition, then, otherwise.GetOrElse(ImmutableArray<Stmt>.Empty)));

        var returnStmt = Statement("return", span => expr.Select(e => (Stmt)new Return(span, e)));

        // output logits = x      or     output "hidden.{i}" = x
        var outputStmt = Statement("output", span =>
            from name in StringLiteral.Select(s => (Expr)s).Or(Identifier("output name").Select(id => (Expr)new StringLit(id.Span, [id.Name])))
            from eq in Sym("=", "=")
            from value in expr
            select (Stmt)new Output(span, name, value));

        // q, k, v = split(...)   /   x = x + h
        Parser<Stmt> assign = i =>
            (from first in Identifier("statement")
             from rest in (from comma in Sym(",") from t in Identifier() select t.Name).Many()
             from eq in Sym("=", "=")
             from value in expr
             select (Stmt)new Assign(first.Span, rest.Prepend(first.Name).ToImmutableArray(), value))(i);

        // require(attention_bias == false, "...")
        Parser<Stmt> callStmt = i => call.Select(c => (Stmt)new ExprStmt(c.Span, c))(i);

        Parser<Stmt> statement =
            from s in weightStmt.Or(forStmt).Or(ifStmt).Or(returnStmt).Or(outputStmt).Or(assign).Or(callStmt)
            from semi in Sym(";").Optional()
            select s;

        body = Guard(
            from open in Sym("{")
            from stmts in statement.Many()
            from close in Sym("}")
            select stmts.ToImmutableArray());

        Parser<string> keyPath =
            from first in Identifier("config key")
            from rest in (from dot in Sym(".") from part in Identifier("config key") select part.Name).XMany()
            select string.Join(".", rest.Prepend(first.Name));

        Parser<Decl> Declaration(string keyword, Func<SourceSpan, Parser<Decl>> rest) => i =>
            (from kw in Keyword(keyword) from d in rest(SpanOf(i)) select d)(i);

        var importDecl = Declaration("import", span =>
            StringLiteral.Select(s => (Decl)new ImportDecl(span, s.Parts.Count() == 1 && s.Parts[0] is string p ? p : "")));

        var modelDecl = Declaration("model", span => Identifier("model name").Select(n => (Decl)new ModelDecl(span, n.Name)));

        // hyper n_kv_heads: int = n_heads from num_key_value_heads
        var hyperDecl = Declaration("hyper", span =>
            from name in Identifier("hyperparameter name")
            from colon in Sym(":")
            from type in typeRef
            from eq in Sym("=", "=")
            from value in expr
            from keys in (from kw in Keyword("from")
                          from first in keyPath
                          from more in (from bar in Sym("|") from k in keyPath select k).XMany()
                          select more.Prepend(first).ToImmutableArray()).XOptional()
            select (Decl)new HyperDecl(span, name.Name, type, value, keys.GetOrElse(ImmutableArray<string>.Empty)));

        var inputDecl = Declaration("input", span =>
            from name in Identifier("input name")
            from colon in Sym(":")
            from type in tensorType
            select (Decl)new InputDecl(span, name.Name, type));

        Parser<Param> param =
            from name in Identifier("parameter name")
            from type in (from colon in Sym(":") from t in typeRef select t).XOptional()
            from value in (from eq in Sym("=", "=") from v in expr select v).XOptional()
            select new Param(name.Span, name.Name, type.GetOrDefault(), value.GetOrDefault());

        var blockDecl = Declaration("block", span =>
            from name in Identifier("block name")
            from open in Sym("(")
            from ps in CommaList(param, ")")
            from close in Sym(")")
            from stmts in body
            select (Decl)new BlockDecl(span, name.Name, ps, stmts));

        var forwardDecl = Declaration("forward", span => body.Select(b => (Decl)new ForwardDecl(span, b)));

        var ignoreDecl = Declaration("ignore", span =>
            from first in keyPath
            from more in (from comma in Sym(",") from k in keyPath select k).XMany()
            select (Decl)new IgnoreDecl(span, more.Prepend(first).ToImmutableArray()));

        Parser<Decl> unknown = i => Fail<Decl>(i, "declaration (import, model, hyper, input, block, forward or ignore)");

        _declaration = importDecl.Or(modelDecl).Or(hyperDecl).Or(inputDecl).Or(blockDecl).Or(forwardDecl).Or(ignoreDecl).Or(unknown);
    }

    // ---------------------------------------------------------------- failure tracking

    private sealed class FailureTracker
    {
        private readonly SortedSet<string> _expected = new(StringComparer.Ordinal);
        private IInput? _at;
        private (IInput At, string Code, string Message)? _hard;
        private (int Position, string Word)? _reserved;

        public int FurthestPosition => Math.Max(_at?.Position ?? 0, _hard?.At.Position ?? 0);

        public void Reset() { _expected.Clear(); _at = null; _hard = null; _reserved = null; }

        public void Expect(IInput at, string what)
        {
            if (_at is null || at.Position > _at.Position) { _at = at; _expected.Clear(); }
            if (at.Position == _at.Position) _expected.Add(what);
        }

        /// <summary>An error that is certain (an unterminated string), not a guess between alternatives.</summary>
        public void Hard(IInput at, string code, string message) => _hard ??= (at, code, message);

        /// <summary>A reserved word stood where a name was expected.</summary>
        public void ReservedWord(IInput at, string word) => _reserved = (at.Position, word);

        public Diagnostic ToDiagnostic(string file, string text, IInput start)
        {
            if (_hard is { } h)
                return new Diagnostic(Severity.Error, h.Code, new SourceSpan(file, h.At.Line, h.At.Column), h.Message);
            var at = _at ?? start;
            var span = new SourceSpan(file, at.Line, at.Column);
            var found = Describe(at);
            if (at.Position == start.Position && _expected.Any(e => e.StartsWith("declaration", StringComparison.Ordinal)))
                return new Diagnostic(Severity.Error, Codes.UnknownDeclaration, span,
                    $"expected a declaration (import, model, hyper, input, block, forward or ignore), found {found}");
            var expected = _expected.Count == 0 ? "something else" : Join(Condense(_expected));

            // When what was found sits on a later line (or is the end of the file), the problem is the end
            // of the previous token: point there ("y = relu(x" is missing its ')' on that line).
            int previous = PreviousTokenEnd(text, at.Position);
            bool moved = previous > start.Position && text.AsSpan(previous, at.Position - previous).Contains('\n')
                         && !expected.Contains("a statement");   // there, the token found is itself the problem
            if (moved || at.AtEnd) span = SpanAt(file, text, Math.Max(previous, start.Position));

            if (at.AtEnd && _expected.Contains("'}'") && UnclosedBrace(text, start.Position) is int brace)
            {
                var open = SpanAt(file, text, brace);
                return new Diagnostic(Severity.Error, Codes.UnclosedBrace, span,
                    $"unexpected end of file: the '{{' at line {open.Line}, column {open.Column} is not closed (expected {expected})");
            }
            var where = moved && !at.AtEnd ? $" on line {at.Line}" : "";
            var note = "";
            if (moved) { }   // what was found starts the next line (often the next declaration): no note about it
            else if (_reserved is { } r && r.Position == at.Position)
                note = $" ('{r.Word}' is a reserved word and cannot be used as a name)";
            else if (!at.AtEnd && at.Current == '=' && WordBefore(text, previous) is { } w && Reserved.Contains(w))
                note = $" ('{w}' is a reserved word and cannot be used as a name)";
            return new Diagnostic(Severity.Error, Codes.Syntax, span, $"expected {expected}, found {found}{where}{note}");
        }

        private static readonly string[] ExpressionStarts = ["'!'", "'('", "'-'", "'['", "'false'", "'true'", "identifier", "number", "string"];
        private static readonly string[] StatementStarts = ["'for'", "'if'", "'output'", "'return'", "'weight'", "identifier", "';'"];

        /// <summary>Every token that can start an expression or statement, listed one by one, says less than "an expression".</summary>
        private static List<string> Condense(IEnumerable<string> expected)
        {
            var set = new SortedSet<string>(expected, StringComparer.Ordinal);
            if (set.Contains("number") && set.Contains("string"))
            {
                set.ExceptWith(ExpressionStarts);
                set.Add("an expression");
            }
            if (set.Remove("statement"))
            {
                set.ExceptWith(StatementStarts);
                set.Add("a statement");
            }
            return set.ToList();
        }

        private static string Join(IReadOnlyCollection<string> items)
        {
            var list = items.ToList();
            return list.Count switch
            {
                1 => list[0],
                2 => $"{list[0]} or {list[1]}",
                _ => string.Join(", ", list.Take(list.Count - 1)) + " or " + list[^1],
            };
        }

        private static SourceSpan SpanAt(string file, string text, int pos)
        {
            int line = 1, lineStart = 0;
            for (int k = 0; k < pos && k < text.Length; k++)
                if (text[k] == '\n') { line++; lineStart = k + 1; }
            return new SourceSpan(file, line, pos - lineStart + 1);
        }

        /// <summary>Where the token before <paramref name="pos"/> ends: back over whitespace and '#' comments.</summary>
        private static int PreviousTokenEnd(string text, int pos)
        {
            int p = Math.Min(pos, text.Length);
            while (true)
            {
                while (p > 0 && char.IsWhiteSpace(text[p - 1])) p--;
                if (p == 0) return 0;
                int lineStart = text.LastIndexOf('\n', p - 1) + 1;
                int comment = CommentStart(text, lineStart, p);
                if (comment < 0) return p;
                p = comment;
            }
        }

        /// <summary>The first '#' outside a string in text[lineStart..end), or -1.</summary>
        private static int CommentStart(string text, int lineStart, int end)
        {
            bool inString = false;
            for (int k = lineStart; k < end; k++)
            {
                char c = text[k];
                if (inString) { if (c == '\\') k++; else if (c == '"') inString = false; }
                else if (c == '"') inString = true;
                else if (c == '#') return k;
            }
            return -1;
        }

        private static string? WordBefore(string text, int end)
        {
            int begin = end;
            while (begin > 0 && IsIdentPart(text[begin - 1])) begin--;
            return begin < end ? text[begin..end] : null;
        }

        /// <summary>The position of the innermost '{' after <paramref name="from"/> that is never closed.</summary>
        private static int? UnclosedBrace(string text, int from)
        {
            var open = new Stack<int>();
            bool inString = false, inComment = false;
            for (int k = from; k < text.Length; k++)
            {
                char c = text[k];
                if (inComment) { if (c == '\n') inComment = false; continue; }
                if (inString)
                {
                    if (c == '\\') k++;
                    else if (c == '"' || c == '\n') inString = false;
                    continue;
                }
                switch (c)
                {
                    case '#': inComment = true; break;
                    case '"': inString = true; break;
                    case '{': open.Push(k); break;
                    case '}': if (open.Count > 0) open.Pop(); break;
                }
            }
            return open.Count > 0 ? open.Peek() : null;
        }
    }
}
